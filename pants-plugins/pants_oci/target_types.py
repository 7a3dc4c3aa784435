"""The `oci_image`, `oci_pull` and `oci_layout` targets: one Field class per BUILD keyword.

Every value is validated as the BUILD file is read (`compute_value`), with the same pure
validators the core uses inside the sandbox, so a bad port or user string fails fast and names
the target and the field.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Callable, ClassVar, Dict, Iterable, Optional, Tuple

from ocibuild import validate
from ocibuild.debian.fallback import check_template
from ocibuild.errors import OciBuildError
from ocibuild.debian.grouping import (
    DEFAULT_MAX_LAYERS,
    MAX_MAX_LAYERS,
    MIN_MAX_LAYERS,
    check_max_layers,
)
from ocibuild.digest import validate_digest
from ocibuild.platform import parse_platform
from ocibuild.reference import parse_reference
from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    AsyncFieldMixin,
    BoolField,
    Dependencies,
    DictStringToStringField,
    Field,
    IntField,
    InvalidFieldException,
    InvalidTargetException,
    OptionalSingleSourceField,
    StringField,
    StringSequenceField,
    Target,
    TriBoolField,
)
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

SCRATCH = "scratch"
# `{build_args.GIT_SHA}`, `{name}`, ...: filled in when the image is built (image_names.py).
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def without_placeholders(value: str) -> str:
    """A template's literal parts, checkable as the BUILD file is read."""
    return _PLACEHOLDER.sub("x", value)


def _field_error(cls: Any, address: Address, err: OciBuildError) -> InvalidFieldException:
    return InvalidFieldException(f"The {cls.alias!r} field in target {address}: {err}")


def _check(cls: Any, address: Address, check: Callable[[str], Any], values: Iterable[str]) -> None:
    for value in values:
        try:
            check(value)
        except OciBuildError as err:
            raise _field_error(cls, address, err) from err


class _KeyCheckedDictField(DictStringToStringField):
    """A dict field whose keys are checked by `key_check` as the BUILD file is read."""

    key_check: ClassVar[Callable[[str], str]]

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Dict[str, str]], address: Address
    ) -> Optional[FrozenDict[str, str]]:
        value = super().compute_value(raw_value, address)
        _check(cls, address, cls.key_check, (value or {}).keys())
        return value


class OciImageBaseField(StringField):
    alias = "base"
    required = True
    help = help_text(
        """
        The image this one is built on: `"scratch"` (an empty filesystem), the address of
        another `oci_image` (its layers are reused, not rebuilt), of an `oci_pull` (an image
        from a registry, pinned by digest), or of an `oci_layout` (a vendored OCI image
        layout kept in the repository).

            oci_image(name="app", base=":python-base", ...)
            oci_image(name="static", base="scratch", ...)

        The new image inherits the base's config (env, entrypoint, user, ...); the fields of
        this target then override or extend it, as a Dockerfile does.
        """
    )


class OciImageDependenciesField(Dependencies):
    help = help_text(
        """
        What goes into the image, one layer per dependency, in the order listed.

        * A target that can be packaged (`pex_binary`, `archive`, ...): its built artifact
          is placed at `/app/<file name>` (e.g. `/app/app.pex`), never at a dist-style path.
        * A `pex_binary` with `layout="packed"` (a directory PEX) becomes two layers: its
          third-party requirements and pex's bootstrap first, then its sources, so a code
          change rebuilds and pushes only a small layer. Run it as
          `entrypoint=["/usr/bin/python3", "/app/app.pex"]`.
        * `files`, `resources` and `relocated_files`: each file keeps its path relative to the
          build root (`examples/site/index.html` lands at `/examples/site/index.html`). Use
          `relocated_files` to place files elsewhere (its `src`/`dest` strip or add a prefix).
          Files over 64 MiB in all are split into layers by a hash of each path (2, 4, ... up to
          16 parts of about 64 MiB), so changing one file rebuilds and pushes one part; the
          split changes only when the files double or halve in size. (In an `oci_layer` they
          stay one layer.)
        * An `oci_python_app`: site-packages layers, then its sources (see its help).

        Two dependencies that write the same path are an error, not a silent overwrite.
        """
    )


class OciImageEntrypointField(StringSequenceField):
    alias = "entrypoint"
    help = help_text(
        """
        The command run when a container starts, in exec form (a list, no shell):
        `entrypoint=["/app/app.pex"]`. Setting it clears the base image's `cmd` unless `cmd`
        is given too (as a Dockerfile ENTRYPOINT does). Unset: inherited from the base.
        """
    )


class OciImageCmdField(StringSequenceField):
    alias = "cmd"
    help = help_text(
        """
        Default arguments to the entrypoint (or the command, without an entrypoint), in exec
        form: `cmd=["--port", "8080"]`. Unset: inherited from the base (unless `entrypoint`
        is set here). Use `cmd=[]` to clear it explicitly.
        """
    )


class OciImageEnvField(_KeyCheckedDictField):
    alias = "env"
    help = help_text(
        """
        Environment variables: `env={"APP_MODE": "prod"}`. They are merged with the base's by
        name: a name set here replaces the base's value in place; new names follow in the
        order written. Names may not be empty or contain `=` or whitespace.
        """
    )

    key_check = staticmethod(validate.validate_env_name)


class _AbsolutePathField(StringField):
    """A path inside the image, checked as the BUILD file is read."""

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            _check(cls, address, lambda v: validate.validate_absolute_path(cls.alias, v), [value])
        return value


class OciImageWorkdirField(_AbsolutePathField):
    alias = "workdir"
    help = "The working directory of the entrypoint, an absolute path: `workdir=\"/app\"`."


class OciImageUserField(StringField):
    alias = "user"
    help = help_text(
        """
        The user (and optionally group) the entrypoint runs as: a name or number, e.g.
        `user="65532:65532"` or `user="nobody"`. Numeric ids work on any base; names must exist
        in the image's /etc/passwd (and /etc/group).
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            _check(cls, address, validate.validate_user, [value])
        return value


class OciImageLabelsField(_KeyCheckedDictField):
    alias = "labels"
    help = help_text(
        """
        Labels in the image config, merged with the base's:
        `labels={"org.opencontainers.image.source": "https://example.com/repo"}`.
        """
    )

    key_check = staticmethod(validate.validate_label_key)


class OciImageAnnotationsField(_KeyCheckedDictField):
    alias = "annotations"
    help = help_text(
        """
        Annotations on the image manifest (not the config), e.g.
        `annotations={"org.opencontainers.image.version": "1.2.3"}`.
        """
    )

    key_check = staticmethod(validate.validate_annotation_key)


class OciImageExposedPortsField(StringSequenceField):
    alias = "exposed_ports"
    help = help_text(
        """
        Ports the container listens on, as `PORT/PROTOCOL` (tcp, udp or sctp; tcp if omitted):
        `exposed_ports=["8080/tcp", "53/udp"]`. Merged with the base's.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        try:
            return tuple(validate.parse_exposed_port(port) for port in value)
        except OciBuildError as err:
            raise _field_error(cls, address, err) from err


class OciImageVolumesField(StringSequenceField):
    alias = "volumes"
    help = help_text(
        """
        Mount points for volumes, absolute paths: `volumes=["/data"]`. Merged with the base's.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        _check(cls, address, lambda v: validate.validate_absolute_path(cls.alias, v), value or ())
        return value


class OciImageStopSignalField(StringField):
    alias = "stop_signal"
    help = help_text(
        """
        The signal that stops the container: a name or a number, e.g. `stop_signal="SIGTERM"`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        try:
            return validate.validate_stop_signal(value)
        except OciBuildError as err:
            raise _field_error(cls, address, err) from err


class OciImagePlatformField(StringField):
    alias = "platform"
    help = help_text(
        """
        The image's platform as `os/arch[/variant]`, e.g. `platform="linux/arm64"`.
        Unset: the base image's platform, or `linux/amd64` on `scratch` (a fixed default, so a
        scratch image's digest does not depend on the machine that builds it). A platform that
        contradicts a single-platform base is an error; from a multi-platform base layout it
        selects the matching image.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            try:
                parse_platform(value)
            except OciBuildError as err:
                raise _field_error(cls, address, err) from err
        return value


class _PlatformsField(StringSequenceField):
    """`os/arch[/variant]` values, each checked as the BUILD file is read."""

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        _check(cls, address, parse_platform, value or ())
        return value


class OciImagePlatformsField(_PlatformsField):
    alias = "platforms"
    help = help_text(
        """
        Build the image for several platforms under one OCI image index, e.g.
        `platforms=["linux/amd64", "linux/arm64"]`: one tag that serves every platform, as
        buildx, ko and rules_oci make. Each platform gets its own image on the base's image
        for that platform (an `oci_pull` or `oci_layout` index, a `debian_packages` locked
        for each architecture, or `scratch`); the dependencies' layers are built once and
        shared by every platform, so they must be platform-independent (files, resources,
        pure-Python PEXes). `pants package` writes a layout whose index.json names the index;
        `pants publish` pushes each platform's image, then the index, then the tags.
        Instead of `platform`; a docker-archive (`docker_archive=True`) holds one platform
        only, so it cannot be asked for too.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        if value is not None and not value:
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} lists no platform: list at "
                'least one, e.g. ["linux/amd64", "linux/arm64"], or remove it')
        seen = [str(parse_platform(p)) for p in value or ()]
        repeated = sorted({p for p in seen if seen.count(p) > 1})
        if repeated:
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} lists {', '.join(repeated)} "
                "more than once: an index holds one image per platform")
        return value


class OciImageLayerCompressionField(StringField):
    alias = "layer_compression"
    default = "gzip"
    valid_choices = ("gzip", "zstd", "gzip-zlib")
    help = help_text(
        """
        How this image's new layers are compressed: `gzip` (every runtime and registry reads
        it; libdeflate level 4 on all cores, the same bytes on every machine and Python),
        `zstd` (level 3: smaller and about twice as fast; needs containerd >= 1.5,
        podman >= 3 or Docker >= 23), or `gzip-zlib` (gzip by the Python's own zlib, the
        only gzip before: its bytes depend on that zlib build, so digests differ between
        machines whose Pythons link different zlibs). Layers reused from the base keep their
        compression.
        """
    )


class OciImageRepositoryField(StringField, AsyncFieldMixin):
    alias = "repository"
    help = help_text(
        """
        The repository name of the image: where `pants publish` pushes it (under each
        registry) and the name in the docker-archive tarball (`docker load`). Defaults to the
        target's directory and name, e.g. `examples/static/image`. Lowercase letters, digits
        and `._-/`; may use the placeholders `{name}`, `{directory}`, `{parent_directory}`
        and `{build_args.NAME}` (see `[oci].build_args`).
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            _check(cls, address, validate.validate_repository, [without_placeholders(value)])
        return value

    def value_or_default(self) -> str:
        if self.value:
            return self.value
        parts = [*self.address.spec_path.split("/"), self.address.target_name]
        return "/".join(p for p in parts if p).lower()


class OciImageTagsField(StringSequenceField):
    alias = "image_tags"
    default = ("latest",)
    help = help_text(
        """
        Tags of the image: each becomes an `org.opencontainers.image.ref.name` in the OCI
        layout's index.json, a `repository:tag` in the docker-archive tarball, and a tag in
        each registry `pants publish` pushes to. `image_tags=["latest", "1.2.3"]`.
        Templates work as in `repository`: `image_tags=["{build_args.GIT_SHA}", "latest"]`
        with `[oci].build_args = ["GIT_SHA"]`. Tags do not change the image's digest.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        if not value:
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} must name at least one tag, "
                f'e.g. image_tags=["latest"].'
            )
        _check(cls, address, validate.validate_tag, [without_placeholders(v) for v in value])
        return value


class OciImageRegistriesField(StringSequenceField):
    alias = "registries"
    help = help_text(
        """
        Where `pants publish` pushes the image: `@alias` for a registry configured under
        `[oci.registries]` in pants.toml, or a registry address. Unset: every registry
        configured with `default = true`. `registries=[]` never publishes.

            oci_image(name="app", ..., registries=["@ghcr", "registry.internal:5000"])

        Each registry gets `<repository>:<tag>` for every tag in `image_tags`; the manifest is
        pushed by digest first, so tags only move once the image is complete there.
        """
    )


class OciImageSkipPushField(BoolField):
    alias = "skip_push"
    default = False
    help = "If true, `pants publish` skips this image (it is still built by `pants package`)."


class OciImageOutputPathField(OutputPathField):
    help = help_text(
        """
        Where the image is written under dist/: a directory holding the OCI image layout,
        with `<output_path>.json` (manifest, config and layer digests) beside it, and
        `<output_path>.tar` if `docker_archive` is set.
        Defaults to `<directory with dots>/<target name>`, e.g. `examples.static/image`.
        """
    )


class OciImageDockerArchiveField(BoolField):
    alias = "docker_archive"
    default = False
    help = help_text(
        """
        Also write `<output_path>.tar`, a docker-archive tarball for `docker load -i` and
        `podman load -i`. Off by default: it is the whole image once more, in Pants' store and
        in dist/, on every change (half a second of a one-line change to a 26 MB image, and it
        grows with the image). Without it, run the layout directly:
        `podman run oci:dist/<output_path>:<tag>`, or copy it into Docker with
        `skopeo copy oci:dist/<output_path>:<tag> docker-daemon:<repository>:<tag>`.
        """
    )


class OciImageVcsAnnotationsField(TriBoolField):
    alias = "vcs_annotations"
    help = help_text(
        """
        Annotate the image manifest with where its sources are, read from git when the build
        runs: `org.opencontainers.image.source` (the `origin` remote's URL, its user,
        password, query and fragment dropped; nothing when `origin` is a local path or
        `file://` URL, which differs between clones), `org.opencontainers.image.revision`
        (the commit, only when the working tree is clean: no modified, staged or untracked
        file) and `org.opencontainers.image.created` (only when `SOURCE_DATE_EPOCH` is set).

        Two clean clones of one commit with the same `origin` build the same digests; a
        dirty tree builds an image without `revision`. An annotation set in `annotations`
        wins. Unset: `[oci].vcs_annotations` (default true); `vcs_annotations=False` leaves
        them out of this image.
        """
    )


class OciImageSbomField(BoolField):
    alias = "sbom"
    default = True
    help = help_text(
        """
        Also write the image's software bills of materials: `<output_path>.spdx.json`
        (SPDX 2.3) and `<output_path>.cdx.json` (CycloneDX 1.6) in dist/, each also attached
        to the image in its OCI layout as an OCI 1.1 referrer (an artifact manifest whose
        `subject` is the image manifest), so scanners and `oras discover` find it beside the
        image. With `platforms`, one pair per platform:
        `<output_path>.<os>-<arch>.spdx.json`.

        They are written from what decided the content, not guessed from files: the base
        (its manifest digest; every locked .deb with its SHA-256 for a `debian_packages`
        base), each PEX's distributions with the wheel SHA-256s of its resolve's lockfile,
        and each other dependency's files by address and SHA-256. On by default: it costs
        one small cached process per image. `sbom=False` skips it, e.g. for a throwaway
        test image.
        """
    )


class OciImageProvenanceField(BoolField):
    alias = "provenance"
    default = True
    help = help_text(
        """
        Also write the image's SLSA provenance: `<output_path>.provenance.json`, an in-toto
        Statement v1 with a SLSA Provenance v1 predicate whose subject is the image manifest,
        also attached to the image in its OCI layout as an OCI 1.1 referrer (artifactType
        `application/vnd.in-toto+json`) and pushed after it by `publish`. With `platforms`,
        one per platform: `<output_path>.<os>-<arch>.provenance.json`.

        It names the target and platforms asked for, and the digest of everything that
        decided the content: the base image's manifest, the git commit (when the image has
        the `org.opencontainers.image.revision` annotation: see `vcs_annotations`), the
        Debian and Python lockfiles, and all source files of the image's targets. No clock,
        host or user: the same build gives the same bytes (its only time is
        `SOURCE_DATE_EPOCH`, when set). The format is described in docs/supply-chain.md.
        On by default: one small cached process per image; `provenance=False` skips it.
        """
    )


class OciImageTarget(Target):
    alias = "oci_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciImageBaseField,
        OciImageDependenciesField,
        OciImageEntrypointField,
        OciImageCmdField,
        OciImageEnvField,
        OciImageWorkdirField,
        OciImageUserField,
        OciImageLabelsField,
        OciImageAnnotationsField,
        OciImageExposedPortsField,
        OciImageVolumesField,
        OciImageStopSignalField,
        OciImagePlatformField,
        OciImagePlatformsField,
        OciImageLayerCompressionField,
        OciImageRepositoryField,
        OciImageTagsField,
        OciImageRegistriesField,
        OciImageSkipPushField,
        OciImageOutputPathField,
        OciImageDockerArchiveField,
        OciImageSbomField,
        OciImageProvenanceField,
        OciImageVcsAnnotationsField,
    )
    help = help_text(
        """
        An OCI container image: a base image plus one layer per dependency plus metadata,
        built without a Docker daemon, root or any privilege, bit-for-bit reproducibly.

        `pants package` writes it to dist/ as an OCI image layout and a docker-archive tarball.
        """
    )

    def validate(self) -> None:
        if self[OciImagePlatformsField].value is None:
            return
        both = [f.alias for f in (OciImagePlatformField, OciImageDockerArchiveField)
                if self[f].value]
        if both:
            raise InvalidTargetException(
                f"The oci_image {self.address} sets `platforms` and "
                f"{' and '.join(f'`{a}`' for a in both)}: `platforms` builds an index of one "
                "image per platform; for one platform (or a docker-archive) set `platform` "
                "alone")


class OciLayoutPathField(StringField):
    alias = "layout"
    required = True
    help = help_text(
        """
        Path, relative to this BUILD file, of an OCI image layout: a directory holding
        `oci-layout`, `index.json` and `blobs/` (as `skopeo copy ... oci:DIR:TAG` or
        `umoci` write), or a `.tar` of one (`skopeo copy ... oci-archive:FILE.tar:TAG`),
        possibly compressed: `.tar.gz`, `.tgz`, `.tar.bz2`, `.tar.xz`, `.tar.zst`. Every blob
        is verified against its digest when the image is used; an archive that decompresses
        to over 100 times its size (beyond the first 8 MiB) is refused as a decompression bomb.
        """
    )


class OciLayoutImageRefField(StringField):
    alias = "image_ref"
    help = help_text(
        """
        Which image of the layout to use, by its `org.opencontainers.image.ref.name` (the tag
        given to skopeo/umoci). Needed only when the layout holds more than one image.
        """
    )


class OciLayoutTarget(Target):
    alias = "oci_layout"
    core_fields = (*COMMON_TARGET_FIELDS, OciLayoutPathField, OciLayoutImageRefField)
    help = help_text(
        """
        A base image kept in the repository as an OCI image layout, for vendored or
        air-gapped bases: `oci_layout(name="busybox", layout="busybox")`, then
        `oci_image(base=":busybox", ...)`.
        """
    )


class OciPullImageField(StringField):
    alias = "image"
    required = True
    help = help_text(
        """
        The image to use as a base, as `[registry/]repository[:tag]`, e.g.
        `image="registry.example.com/library/python:3.12-slim"`. Docker Hub names work as
        docker writes them (`python:3.12` is `docker.io/library/python:3.12`). The tag only
        documents where the pin came from: the image is always read by `digest`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        _check(cls, address, parse_reference, [value])
        if "@" in value:
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address}: put the digest in the `digest` "
                f"field, not in {value!r}."
            )
        return value


class OciPullDigestField(StringField):
    alias = "digest"
    help = help_text(
        """
        The pin: the `sha256:` digest of the manifest or multi-platform index the image is
        read by. Required for building; when it is missing, the error names the digest the
        tag points at now, and `pants oci-pin ADDRESS` writes it into the BUILD file.
        Every byte pulled is verified against it, so the build is reproducible and a
        registry cannot substitute content.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            _check(cls, address, validate_digest, [value])
        return value


class OciPullPlatformsField(_PlatformsField):
    alias = "platforms"
    help = help_text(
        """
        The platforms images may use from a multi-platform base, e.g.
        `platforms=["linux/amd64", "linux/arm64"]`. Each `oci_image` picks one with its
        `platform` field (unset: `linux/amd64`); asking for a platform not listed here is an
        error, so a base cannot silently change architecture. Unset: any platform the index has.
        """
    )


class OciPullTarget(Target):
    alias = "oci_pull"
    core_fields = (*COMMON_TARGET_FIELDS, OciPullImageField, OciPullDigestField,
                   OciPullPlatformsField)
    help = help_text(
        """
        A base image from a registry, pinned by digest:
        `oci_pull(name="python-base", image="ghcr.io/org/python:3.12", digest="sha256:...")`,
        then `oci_image(base=":python-base", ...)`.

        The manifest, config and layers are fetched once by digest, verified, and kept in
        Pants' store (layers) and named caches (manifests), so later builds need no network.
        Credentials are looked up as docker and podman do (docs/registries.md) and never enter
        a cache key. Registry options (`insecure`, `ca_cert`) come from the `[oci].registries`
        entry whose `address` matches the image's registry.
        """
    )


class DebianPackagesField(StringSequenceField):
    alias = "packages"
    required = True
    help = help_text(
        """
        The Debian packages to install, e.g. `packages=["python3-minimal", "ca-certificates"]`;
        their `Depends` and `Pre-Depends` are added (not `Recommends`, and no implicit
        Essential packages: the image holds exactly this closure).
        """
    )


class DebianSuiteField(StringField):
    alias = "suite"
    help = help_text(
        """
        The suite (distribution) to install from, e.g. `suite="trixie"`, with `mirror` (and
        `keyring`). For several suites resolved together use `sources` instead.
        """
    )


class DebianComponentsField(StringSequenceField):
    alias = "components"
    default = ("main",)
    help = "The archive components to resolve in, e.g. `components=[\"main\", \"contrib\"]`."


class DebianArchitecturesField(StringSequenceField):
    alias = "architectures"
    default = ("amd64",)
    help = help_text(
        """
        Debian architectures to lock, e.g. `architectures=["amd64", "arm64"]`. An `oci_image`
        on this base uses the one matching its `platform` (`linux/amd64` -> `amd64`,
        `linux/arm64` -> `arm64`, `linux/arm/v7` -> `armhf`).
        """
    )


class DebianMirrorField(StringField):
    alias = "mirror"
    help = help_text(
        """
        The Debian mirror URL, written in the repository (never taken from the host's apt
        configuration), e.g. `mirror="http://deb.debian.org/debian"` or a
        snapshot.debian.org URL for a frozen archive. Only `pants debian-lock` and the first
        download of each locked file contact it.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        if value is not None and not value.startswith(("http://", "https://")):
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address}: {value!r} must be an http:// or "
                'https:// URL, e.g. "http://deb.debian.org/debian".'
            )
        return value


_SOURCE_KEYS = ("suite", "mirror", "keyring")


class DebianSourcesField(Field):
    alias = "sources"
    default = None
    help = help_text(
        """
        Several suites resolved together, in place of `suite`, `mirror` and `keyring`: a list
        of dicts with `suite`, `mirror` and optionally `keyring` (as the `keyring` field,
        relative to this BUILD file), e.g. a stable release with its updates and security
        suites:

            debian_packages(
                name="python-base",
                packages=["python3-minimal", "ca-certificates"],
                sources=[
                    {"suite": "trixie", "mirror": "http://deb.debian.org/debian"},
                    {"suite": "trixie-updates", "mirror": "http://deb.debian.org/debian"},
                    {"suite": "trixie-security",
                     "mirror": "http://deb.debian.org/debian-security"},
                ],
            )

        Each suite's InRelease is verified on its own (its `keyring`, default the Debian
        archive keyring). The highest version of a package in any suite wins, as apt does
        with its default pins; of equal versions, the first suite listed. The lockfile
        records each package's suite and URL.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Any], address: Address
                      ) -> Optional[Tuple[FrozenDict[str, str], ...]]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        where = f"The {cls.alias!r} field in target {address}"
        if not isinstance(value, (list, tuple)) or not value:
            raise InvalidFieldException(f"{where} must be a non-empty list of dicts, e.g. "
                                        '[{"suite": "trixie", "mirror": '
                                        '"http://deb.debian.org/debian"}], not {value!r}')
        sources = []
        for entry in value:
            if not isinstance(entry, dict) or not {"suite", "mirror"} <= set(entry) or \
                    not set(entry) <= set(_SOURCE_KEYS) or \
                    not all(isinstance(v, str) and v for v in entry.values()):
                raise InvalidFieldException(
                    f"{where}: {entry!r} must be a dict of strings with `suite` and `mirror` "
                    "and optionally `keyring`, e.g. "
                    '{"suite": "trixie-security", "mirror": "http://deb.debian.org/debian-security"}')
            if not entry["mirror"].startswith(("http://", "https://")):
                raise InvalidFieldException(f"{where}: the mirror {entry['mirror']!r} of "
                                            f"{entry['suite']!r} must be an http:// or https:// URL")
            sources.append(FrozenDict(entry))
        suites = [s["suite"] for s in sources]
        if len(set(suites)) != len(suites):
            raise InvalidFieldException(f"{where}: each suite may be listed once (got "
                                        f"{', '.join(suites)})")
        return tuple(sources)


class DebianFallbackMirrorsField(StringSequenceField):
    alias = "fallback_mirrors"
    help = help_text(
        """
        Where `pants package` looks for a locked .deb its suite's mirror no longer has (Debian
        mirrors drop superseded versions), in order, before those of
        `[oci].debian_fallback_mirrors`: URL templates with `{timestamp}` (the suite's
        InRelease `Date` recorded at lock time, as `20251108T103211Z`), `{archive}` (the last
        path segment of the suite's mirror, `debian` or `debian-security`) and `{suite}`; the
        pool path is appended. E.g.
        `fallback_mirrors=["https://snapshot.debian.org/archive/{archive}/{timestamp}"]`.
        Each download is still checked against the locked SHA-256 and size. Changing this
        field needs no new lock.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address
                      ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for template in value or ():
            try:
                check_template(template, f"The {cls.alias!r} field in target {address}")
            except OciBuildError as err:
                raise InvalidFieldException(str(err)) from err
        return value


class DebianLockfileField(StringField):
    alias = "lockfile"
    help = help_text(
        """
        The lockfile, relative to this BUILD file: every package of the closure with its
        version, URL path, size and SHA-256, per architecture. Written by
        `pants debian-lock ADDRESS`; default `<name>.lock.json`.
        """
    )


class DebianKeyringField(StringField):
    alias = "keyring"
    help = help_text(
        """
        The OpenPGP keyring (binary, as `gpg --export` writes it), relative to this BUILD file,
        that signs the suite's InRelease, for a private or third-party archive. Default: the
        Debian archive keyring at /usr/share/keyrings/debian-archive-keyring.gpg (package
        `debian-archive-keyring`). `pants debian-lock` checks the signature with `gpgv` and
        parses only the text gpgv verified; with no keyring, or no gpgv, it stops, unless
        `allow_unsigned_index=True`.
        """
    )


class DebianAllowUnsignedIndexField(BoolField):
    alias = "allow_unsigned_index"
    default = False
    help = help_text(
        """
        Lock from the mirror's InRelease (or its plain Release, when there is no InRelease)
        without checking a signature, e.g. `allow_unsigned_index=True` for a local test
        repository with no key. The risk:
        whoever controls the mirror or the network path to it (a plain http:// mirror, a
        proxy) then chooses every package and every byte of the image, since the lockfile's
        SHA-256 sums are only as good as the index they came from. With `keyring` set, the
        signature is still checked. The lockfile records `NOT verified: ...`, and
        `pants package` refuses such a lockfile once this field is back to False.
        """
    )


class DebianMaxLayersField(IntField):
    alias = "max_layers"
    default = DEFAULT_MAX_LAYERS
    help = help_text(
        f"""
        How many layers the packages may take, e.g. `max_layers=12`; from
        {MIN_MAX_LAYERS} to {MAX_MAX_LAYERS}, default {DEFAULT_MAX_LAYERS}. The root layer
        (merged-/usr symlinks) and the config layer (passwd, group, CA bundle) come on top:
        the base has at most `max_layers + 2` layers. A quarter of the budget (at least one)
        is shared layers; the rest go to the largest packages (by the power of two of their
        .deb's size), one each; every other package joins a shared layer chosen by a hash
        of its name. So a new lock that updates one package changes one layer (three at
        most, when the package's size crosses into or out of the largest), and the other
        layers keep their digests. A larger budget gives more, smaller shared layers, so a
        small package's update pulls less; each layer costs runtimes and registries a little
        (containerd refuses more than 127 in all). See docs/debian.md.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> int:
        value = super().compute_value(raw_value, address)
        try:
            return check_max_layers(value, where=f"The {cls.alias!r} field in target {address}")
        except OciBuildError as err:
            raise InvalidFieldException(f"{err}.") from err


class DebianPackagesTarget(Target):
    alias = "debian_packages"
    core_fields = (*COMMON_TARGET_FIELDS, DebianPackagesField, DebianSuiteField,
                   DebianComponentsField, DebianArchitecturesField, DebianMirrorField,
                   DebianLockfileField, DebianKeyringField, DebianAllowUnsignedIndexField,
                   DebianSourcesField, DebianFallbackMirrorsField, DebianMaxLayersField)
    help = help_text(
        """
        A distroless base image assembled from Debian packages, without apt, dpkg, root or
        any privileged step, pinned by a lockfile and bit-for-bit reproducible:

            debian_packages(name="python-base", packages=["python3-minimal"],
                            suite="trixie", mirror="http://deb.debian.org/debian")
            oci_image(base=":python-base", entrypoint=["/usr/bin/python3", ...], ...)

        `pants debian-lock ADDRESS` resolves the dependency closure and writes the lockfile;
        `pants package` then downloads exactly the locked files (verified by SHA-256, cached)
        and builds the packages into at most `max_layers` layers. Maintainer scripts are NOT
        run: files they would generate are missing, except the CA bundle (generated when
        `ca-certificates` is installed) and /etc/passwd and /etc/group (root, nobody and
        nonroot 65532).
        """
    )

    def validate(self) -> None:
        single = [f.alias for f in (DebianSuiteField, DebianMirrorField, DebianKeyringField)
                  if self[f].value is not None]
        if self[DebianSourcesField].value is not None:
            if single:
                raise InvalidTargetException(
                    f"The debian_packages {self.address} sets `sources` and "
                    f"{', '.join(f'`{a}`' for a in single)}: list every suite (with its mirror "
                    "and keyring) in `sources` instead")
        elif self[DebianSuiteField].value is None or self[DebianMirrorField].value is None:
            raise InvalidTargetException(
                f"The debian_packages {self.address} needs `suite` and `mirror` (e.g. "
                'suite="trixie", mirror="http://deb.debian.org/debian"), or `sources` for '
                "several suites")

    def debian_sources(self) -> Tuple[Dict[str, Optional[str]], ...]:
        """Each suite with its `mirror` and `keyring` (a build-root path, or None for the
        default), in order: `sources`, or the one of `suite`/`mirror`/`keyring`."""
        listed = self[DebianSourcesField].value
        raw = listed if listed is not None else (
            {"suite": self[DebianSuiteField].value, "mirror": self[DebianMirrorField].value,
             "keyring": self[DebianKeyringField].value},)
        return tuple({"suite": s["suite"], "mirror": s["mirror"],
                      "keyring": self._build_root_path(s.get("keyring"))} for s in raw)

    def _build_root_path(self, relative: Optional[str]) -> Optional[str]:
        if not relative:
            return None
        return posixpath.normpath(posixpath.join(self.address.spec_path, relative))

    def lockfile_path(self) -> str:
        name = self[DebianLockfileField].value or f"{self.address.target_name}.lock.json"
        return posixpath.normpath(posixpath.join(self.address.spec_path, name))


class OciLayerDependenciesField(Dependencies):
    help = help_text(
        """
        What goes into this one layer, placed as in an `oci_image`'s `dependencies`
        (packages at `/app/<file name>`, files at their build-root path), or under
        `destination` when it is set.
        """
    )


class OciLayerDestinationField(_AbsolutePathField):
    alias = "destination"
    help = help_text(
        """
        Where the layer's content goes, as an absolute path: packages land at
        `<destination>/<file name>` (instead of `/app/...`), files at
        `<destination>/<build-root path>`. E.g. `destination="/srv/www"`.
        """
    )


class OciLayerOwnerField(StringField):
    alias = "owner"
    help = help_text(
        """
        Numeric `uid:gid` owning every file and directory the layer writes, e.g.
        `owner="65532:65532"` for a non-root user's data. Parent directories the layer only
        creates (`/etc` for `/etc/app`) stay root's. Unset: 0:0.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            uid, sep, gid = value.partition(":")
            if not (sep and uid.isdigit() and gid.isdigit()):
                raise InvalidFieldException(
                    f"The {cls.alias!r} field in target {address}: {value!r} must be numeric "
                    'UID:GID, e.g. "65532:65532".'
                )
        return value


class OciLayerFileModeField(StringField):
    alias = "file_mode"
    help = help_text(
        """
        Octal mode of every regular file in the layer, e.g. `file_mode="0640"`; directories
        stay 0755. Unset: 0755 for files executable in the repository, else 0644.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not (value and all(c in "01234567" for c in value)
                                      and int(value, 8) <= 0o7777):
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address}: {value!r} must be an octal mode, "
                'e.g. "0640".'
            )
        return value


class OciLayerCompressionField(StringField):
    alias = "layer_compression"
    valid_choices = ("gzip", "zstd", "gzip-zlib")
    help = "This layer's compression; unset: the image's `layer_compression`."


class OciLayerTarget(Target):
    alias = "oci_layer"
    core_fields = (*COMMON_TARGET_FIELDS, OciLayerDependenciesField, OciLayerDestinationField,
                   OciLayerOwnerField, OciLayerFileModeField, OciLayerCompressionField)
    help = help_text(
        """
        One image layer made of several dependencies, with its own placement, owner, file mode
        and compression. List it in an `oci_image`'s `dependencies` like anything else; order
        layers by how often they change (rarely changing first), so a change rebuilds and
        pushes only the layers above it:

            oci_layer(name="static", dependencies=[":assets", ":fonts"],
                      destination="/srv/www", owner="65532:65532")
            oci_image(name="image", base=..., dependencies=[":static", ":app"])
        """
    )


class OciPythonAppDependenciesField(Dependencies):
    help = help_text(
        """
        The app's first-party code: `python_sources` (and the `python_requirement`s they
        use, found by Pants' dependency inference as for a `pex_binary`).
        """
    )


class OciPythonAppMaxLayersField(IntField):
    alias = "max_layers"
    default = 4
    help = help_text(
        f"""
        How many layers the third-party distributions may take, from {MIN_MAX_LAYERS} to
        {MAX_MAX_LAYERS}, default 4: the largest alone (e.g. numpy), the rest shared by a
        hash of their name, as `debian_packages` groups packages; so bumping one requirement
        changes its layer (or its shared layer) and no other.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> int:
        value = super().compute_value(raw_value, address)
        try:
            return check_max_layers(value, f"the `max_layers` of {address}")
        except OciBuildError as err:
            raise InvalidFieldException(str(err)) from None


class OciPythonAppTarget(Target):
    alias = "oci_python_app"
    core_fields = (*COMMON_TARGET_FIELDS, OciPythonAppDependenciesField,
                   OciPythonAppMaxLayersField)
    help = help_text(
        """
        A Python app as plain files instead of a PEX: its third-party distributions installed
        once into `/app/site-packages` (split into layers by `max_layers`), its sources into
        `/app/src`, both byte-compiled (unchecked-hash `.pyc`, deterministic, so it starts fast
        on a read-only root filesystem). A code change rebuilds only the small sources layer,
        without building a PEX; nothing is unpacked when the container starts. List it in an
        `oci_image`'s `dependencies` and run the module:

            oci_python_app(name="app", dependencies=[":lib"])
            oci_image(name="image", base=":python-base", dependencies=[":app"],
                      entrypoint=["/usr/bin/python3", "-m", "greet.cli"],
                      env={"PYTHONPATH": "/app/src:/app/site-packages"})

        The distributions are resolved from the sources' resolve (its lockfile) for the
        interpreter Pants picks for their `interpreter_constraints`, which should match the
        base's Python (the `.pyc` are compiled by it). The `.pyc` bytes depend on that
        interpreter's patch release (20 of 50 files differ between CPython 3.13.0 and
        3.13.5), so for the same digests on every machine pin the patch release in
        `interpreter_constraints` (e.g. `CPython==3.13.5`, the base's). Each distribution's importable files
        and `.dist-info` go in; its console scripts and data files (a wheel's `.data/`) do
        not: run modules with `python -m`. `/app/site-packages` is on `PYTHONPATH`, not a
        site directory, so `.pth` files there are not processed: a distribution that needs
        one (an old `-nspkg.pth` namespace package) needs a PEX. The wheels are resolved for
        the machine that builds: a wheel with native code for another platform than the
        image's is an error naming it (use a `pex_binary` with `complete_platforms` for such
        images).
        """
    )


# -- oci_dockerfile_image: Pants' `docker_image` fields, built by the ocibuild engine ---------


class OciDockerfileSourceField(OptionalSingleSourceField):
    default = "Dockerfile"
    help = help_text(
        """
        The Dockerfile, relative to the BUILD file (as `docker_image`'s `source`).
        """
    )


class OciDockerfileDependenciesField(Dependencies):
    help = help_text(
        """
        What the build context holds, placed as Pants' `docker_image` places it: each
        packageable dependency (`pex_binary`, `archive`, ... and those of its dependencies)
        at its output path (`COPY examples.app/app.pex /app/`), each `file`/`resource` (and
        `relocated_files`) at its path from the build root; then `context_root` selects the
        part of that tree the Dockerfile sees.

        Image targets (`oci_pull`, `oci_layout`, `oci_image`, `debian_packages`,
        `oci_dockerfile_image`) are not put in the context: they are what the Dockerfile's
        `FROM` and `COPY --from` name. A `FROM IMAGE` must match an `oci_pull` in
        `dependencies` (its `image` field, e.g. `image="python:3.12"`, pinned by its
        `digest`), or be the address of an image target
        (`ARG BASE=//images:base` then `FROM $BASE`, as with `docker_image`).
        """
    )


class OciDockerfileContextRootField(StringField):
    alias = "context_root"
    help = help_text(
        """
        The directory of the context tree (see `dependencies`) that is the build context,
        as `docker_image` has it: `files` is relative to the build root, `./files` to the
        BUILD file. Unset: the build root, so `COPY examples/app/conf.txt /etc/` and
        `COPY examples.app/app.pex /app/` name dependencies as they lie.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and value.startswith("/"):
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} must be a relative path, not "
                f"{value!r}: use {value.strip('/')!r} (from the build root) or "
                f"{'./' + value.strip('/')!r} (from the BUILD file)")
        return value

    def root(self, address: Address) -> str:
        """The context root relative to the build root ("" for the build root itself)."""
        value = self.value or ""
        if value.startswith("./"):
            value = posixpath.join(address.spec_path, value)
        normal = posixpath.normpath(value) if value else ""
        if normal == ".":
            return ""
        if normal.startswith(".."):
            raise InvalidFieldException(
                f"The {self.alias!r} field in target {address}: {self.value!r} is outside "
                "the build root")
        return normal


class OciDockerfileBuildArgsField(StringSequenceField):
    alias = "extra_build_args"
    default = ()
    help = help_text(
        """
        Build arguments (`--build-arg`), as `docker_image`'s: `NAME=value`, or `NAME` to take
        the value from the environment of the Pants run. `[oci].build_args` adds to them
        (the target's win). Only the ARGs the Dockerfile declares reach a step (and its cache
        key), and the proxy variables (`HTTP_PROXY`, ...) as docker passes them.
        """
    )


class OciDockerfileTargetStageField(StringField):
    alias = "target_stage"
    help = help_text(
        """
        The stage to build (`docker build --target`): only the stages it needs are built.
        Unset: the last stage.
        """
    )


class OciDockerfileLayerCompressionField(OciImageLayerCompressionField):
    valid_choices = ("gzip", "zstd")
    help = help_text(
        """
        How the layers of COPY, ADD, WORKDIR and RUN steps are compressed: `gzip`
        (libdeflate, the same bytes on every machine) or `zstd` (smaller, faster; needs
        containerd >= 1.5, podman >= 3 or Docker >= 23). The base's layers keep theirs.
        """
    )


class _NotYetField(BoolField):
    """A field of `oci_image` that is off here, so `publish` sees a value; refused when set."""

    default = False

    @classmethod
    def compute_value(cls, raw_value: Optional[bool], address: Address) -> bool:
        value = super().compute_value(raw_value, address)
        if value:
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address}: an oci_dockerfile_image has no "
                f"{cls.alias} yet; leave it unset")
        return value


class OciDockerfileSbomField(_NotYetField, OciImageSbomField):
    help = "Not yet for Dockerfile images: always off (an error when set to true)."


class OciDockerfileProvenanceField(_NotYetField, OciImageProvenanceField):
    help = "Not yet for Dockerfile images: always off (an error when set to true)."


class OciDockerfileImageTarget(Target):
    alias = "oci_dockerfile_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        OciDockerfileSourceField,
        OciDockerfileDependenciesField,
        OciDockerfileContextRootField,
        OciDockerfileBuildArgsField,
        OciDockerfileTargetStageField,
        OciImagePlatformField,
        OciDockerfileLayerCompressionField,
        OciImageAnnotationsField,
        OciImageVcsAnnotationsField,
        OciImageRepositoryField,
        OciImageTagsField,
        OciImageRegistriesField,
        OciImageSkipPushField,
        OciImageOutputPathField,
        OciImageDockerArchiveField,
        OciDockerfileSbomField,
        OciDockerfileProvenanceField,
    )
    help = help_text(
        """
        An image built from a Dockerfile by pants-oci's engine, RUN steps included, without a
        Docker daemon, root or user namespaces. Its fields are `docker_image`'s, so a
        repository moves over by renaming the target type:

            oci_dockerfile_image(
                name="app",
                dependencies=[":app-pex", ":base"],   # the context; :base is an oci_pull
                extra_build_args=["VERSION=1.2"],
                image_tags=["latest", "1.2"],
            )

        Each step is its own cached Pants process: a RUN is keyed by the layers under it,
        its instruction (the Dockerfile up to it), the build args the Dockerfile declares,
        and nothing of the context; a COPY by the context files its sources match. So a
        change to a file only a late COPY reads re-runs no RUN before it. `pants package`
        writes an OCI layout to dist/ as `oci_image` does; `pants publish` pushes it.
        """
    )
