"""The command-line layer: Typer commands that read options, build a ``Context``, call one
phase function and turn errors into exit codes. Nothing else in kservectl imports Typer."""
