"""`[oci].signing_key`: a key file or `env:NAME`, checked before anything is pushed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pants_oci.subsystems.oci import SigningKey


def test_a_file_from_the_build_root_or_absolute(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys/cosign.pem").write_text("PEM")
    assert SigningKey.parse("keys/cosign.pem", str(tmp_path)) == SigningKey(
        path=str(tmp_path / "keys/cosign.pem"))
    assert SigningKey.parse(str(tmp_path / "keys/cosign.pem"), "/elsewhere") == SigningKey(
        path=str(tmp_path / "keys/cosign.pem"))


def test_an_environment_variable() -> None:
    assert SigningKey.parse("env:COSIGN_PRIVATE_KEY", "/") == SigningKey(
        env_var="COSIGN_PRIVATE_KEY")


@pytest.mark.parametrize("value, message", [
    ("env:", "[oci].signing_key: 'env:' must be `env:NAME` with NAME an environment "
             "variable's name, e.g. env:COSIGN_PRIVATE_KEY"),
    ("env:A-B", "[oci].signing_key: 'env:A-B' must be `env:NAME` with NAME an environment "
                "variable's name, e.g. env:COSIGN_PRIVATE_KEY"),
    ("missing.pem", "[oci].signing_key: no key file 'missing.pem' (looked for ROOT/missing.pem); "
                    "give a PEM file from the build root, an absolute path, or env:NAME"),
])
def test_bad_values_name_the_option(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        SigningKey.parse(value, str(tmp_path))
    assert str(err.value) == message.replace("ROOT", str(tmp_path))
