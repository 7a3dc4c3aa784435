"""A click CLI: `greet --count N NAME`."""

import click


@click.command()
@click.option("--count", default=1, help="How many greetings.")
@click.argument("name")
def cli(count: int, name: str) -> None:
    for i in range(count):
        click.echo(f"greeting {i + 1} of {count}: hello {name} (click {click.__version__})")


if __name__ == "__main__":
    cli()
