"""The ``turbexp`` command line."""

from __future__ import annotations

import glob
import os
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import turbexp
from turbexp import interrupt
from turbexp.errors import UserError
from turbexp.progress import console

EXIT_USER_ERROR = 2
# results go to stdout (full width when piped); progress, warnings and errors to stderr
# piped: 160 columns unless COLUMNS says otherwise (rich reads it when no width is given)
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)


def _jobs_option(function):
    return click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                        help="Simulations run in parallel (default: TURBEXP_JOBS or all cores).")(
        function)


class _Commands(click.Group):
    """The built-in commands, then those plugin packages add (``register_commands``), which
    are loaded only when one is asked for: the built-ins start without loading plugins."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        from turbexp.plugins import registry

        found = registry().commands.get(cmd_name)
        return None if found is None else found.command


@click.group(cls=_Commands, epilog="Plugin packages can add commands; `turbexp plugins` "
                                   "lists them.")
@click.version_option(turbexp.__version__, prog_name="turbexp")
def cli() -> None:
    """Machine-learning experiments on images of interstellar turbulence, tracked in MLflow."""


_SET_HELP = {
    "experiment": "Change a value of every experiment file before it is validated, as a dotted "
                  "key: `--set data.images.size=64`, `--set estimator.epochs=5`; keys under "
                  "`campaign.` change the experiment's campaign file (`--set campaign.grid=32`)."
                  " Repeatable.",
    "campaign": "Change a value of every campaign file before it is validated, as a dotted "
                "key: `--set grid=32`, `--set groups.0.count=100`. Repeatable.",
}


def _spec_options(kind: str):
    """``--set KEY=VALUE`` and ``--scale NAME`` for the commands that read ``kind`` files."""
    def add(function):
        function = click.option(
            "--scale", default=None, metavar="NAME",
            help="Apply every file's scale NAME (its `scales:` section), e.g. `--scale paper`, "
                 "the reference study's size.")(function)
        return click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                            help=_SET_HELP[kind])(function)
    return add


@cli.command()
@click.argument("files", nargs=-1, required=True)
@_jobs_option
@_spec_options("experiment")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help="Repeat each experiment over independent campaign seeds and splits "
                   "(the same as --set repeats=K).")
@click.option("--dry-run", is_flag=True,
              help="Print what would run and its estimated cost, run nothing, write nothing.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def run(files: tuple[str, ...], jobs: int | None, assignments: tuple[str, ...],
        scale: str | None, repeats: int | None, dry_run: bool, no_progress: bool) -> None:
    """Validate every experiment FILE, then run them one after another.

    Every holdout metric is printed and logged with its 95 % interval from a bootstrap over
    holdout simulations. An interrupted run (Ctrl-C) is marked KILLED in MLflow; the same
    command resumes it with the result an uninterrupted run gives.
    """
    from turbexp.experiment import plan_experiments
    from turbexp.overrides import parse_assignments
    from turbexp.paths import cache_dir

    overrides = parse_assignments(assignments)
    if repeats is not None:
        overrides["repeats"] = repeats
    plans = plan_experiments(list(files), overrides=overrides, scale=scale)
    if dry_run:
        from turbexp.commands.cost import estimate, render

        render(estimate(plans), out)
        return
    from turbexp.errors import gather
    from turbexp.experiment import check_image_memory
    from turbexp.image_set import unavailable
    from turbexp.runner import run_experiment
    from turbexp.store import SimulationStore

    gather(check_image_memory, plans)
    store = SimulationStore(cache_dir())
    summaries, skipped = [], {}
    for plan in plans:
        reason = unavailable(plan, store)
        if reason is not None:
            skipped[plan.spec.name] = reason
            out.print(f"[yellow]skipped[/] {plan.spec.name}: {reason}", soft_wrap=True)
            continue
        summaries.append(run_experiment(plan, store, jobs=jobs, show_progress=not no_progress))
    table = Table(title="turbexp run (95 % intervals: bootstrap over holdout simulations)")
    for column in ("experiment", "holdout [95 % interval]", "tuning", "holdout data",
                   "MLflow run / model"):
        table.add_column(column, overflow="fold")  # ids and names wrap, never cut
    for s in summaries:
        value = s.holdout.text(4)
        if s.spread is not None:
            value += f" sd {s.spread:.2g} ({s.repeats} repeats)"
        tuning = f"{s.trials} trials" + ("" if s.best_test is None else
                                         f"\nbest test {s.best_test:.4g}")
        table.add_row(s.experiment, f"{s.metric}\n{value}", tuning,
                      f"{s.n_simulations} sims\n{s.n_images} images",
                      "\n".join(filter(None, (s.run_id, s.model_uri))))
    for name, reason in skipped.items():
        table.add_row(name, f"skipped: {reason}", "", "", "")
    out.print(table)


@cli.command()
@click.argument("files", nargs=-1, required=True)
@_spec_options("experiment")
def validate(files: tuple[str, ...], assignments: tuple[str, ...], scale: str | None) -> None:
    """Check experiment FILES (and their campaigns) without running anything."""
    from turbexp.experiment import plan_experiments
    from turbexp.overrides import parse_assignments

    for plan in plan_experiments(list(files), overrides=parse_assignments(assignments),
                                 scale=scale):
        out.print(f"[green]✓[/] {plan.path}: {plan.spec.name} "
                      f"({len(plan.campaign.simulations)} simulations)")


@cli.group()
def sims() -> None:
    """Simulation campaigns."""


@sims.command("validate")
@click.argument("files", nargs=-1, required=True)
@_spec_options("campaign")
def sims_validate(files: tuple[str, ...], assignments: tuple[str, ...],
                  scale: str | None) -> None:
    """Check campaign FILES without simulating anything."""
    from turbexp.campaign import plan_campaigns
    from turbexp.overrides import parse_assignments

    for plan in plan_campaigns(list(files), overrides=parse_assignments(assignments),
                               scale=scale):
        out.print(f"[green]✓[/] {plan.path}: {plan.spec.name} ({len(plan.simulations)} "
                  f"simulations, {plan.simulator.name}, executor {plan.spec.executor.kind})")


@sims.command("run")
@click.argument("files", nargs=-1, required=True)
@_jobs_option
@click.option("--executor", type=click.Choice(["local", "slurm"]), default=None,
              help="Where simulations run (default: the campaign's executor.kind).")
@click.option("--wait/--no-wait", default=True,
              help="slurm: follow the submitted tasks to the end (default) or return at once.")
@_spec_options("campaign")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def sims_run(files: tuple[str, ...], jobs: int | None, executor: str | None, wait: bool,
             assignments: tuple[str, ...], scale: str | None, no_progress: bool) -> None:
    """Make the simulations of each campaign FILE that are missing from the cache.

    Failed simulations are recorded and the campaign goes on; a rerun retries only
    the failed and missing ones.
    """
    from turbexp.campaign import plan_campaigns, run_campaign
    from turbexp.overrides import parse_assignments
    from turbexp.paths import cache_dir
    from turbexp.store import SimulationStore

    plans = plan_campaigns(list(files), overrides=parse_assignments(assignments), scale=scale)
    store = SimulationStore(cache_dir())
    failed = 0
    for plan in plans:
        outcome = run_campaign(plan, store, jobs=jobs, executor=executor, wait=wait,
                               show_progress=not no_progress)
        pending = len(plan.simulations) - outcome.done - outcome.reused - len(outcome.failed)
        arrays = ", ".join(sorted({job.split("_")[0] for job in outcome.submitted}))
        out.print(f"{plan.spec.name}: {len(plan.simulations)} simulations, "
                  f"{outcome.done} made, {outcome.reused} already in {store.root}, "
                  f"{len(outcome.failed)} failed"
                  + (f", {pending} submitted to SLURM (array job {arrays})" if pending else ""))
        for key, error in outcome.failed.items():
            console.print(f"  [red]failed[/] {key[:12]}: {escape(error)}", soft_wrap=True)
        failed += len(outcome.failed)
    if failed:
        sys.exit(1)


@cli.command("list")
@click.argument("files", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="The rows as JSON, for scripts.")
def list_(files: tuple[str, ...], as_json: bool) -> None:
    """The catalogue: each experiment with its last run, model and headline metric.

    In a terminal a table that folds long names; piped, tab-separated values.
    """
    from turbexp.commands import catalogue

    paths = list(files) or sorted(glob.glob("experiments/*.yaml"))
    if not paths:
        raise UserError("no experiment files given and none found in experiments/")
    found = catalogue.rows(paths)
    if as_json:
        catalogue.write_json(found, sys.stdout)
    elif sys.stdout.isatty():
        catalogue.render(found, Console())
    else:
        catalogue.write_plain(found, sys.stdout)


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="EXPERIMENT_OR_RUN_ID...")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for the PNG and PDF figures (default: comparison/NAME).")
@click.option("--name", default=None,
              help="Name of the comparison (default: the experiment names joined by _vs_).")
def compare(runs: tuple[str, ...], out_dir: str | None, name: str | None) -> None:
    """Draw runs scored on the same holdout together: ROC or predicted-vs-true, and the
    headline metric beside the physics baseline; log them to a comparison run in MLflow."""
    from pathlib import Path

    from turbexp.commands.compare import compare as compare_runs
    from turbexp.commands.compare import sizes
    from turbexp.tracking import existing_store

    existing_store()
    result = compare_runs(list(runs), name=name, out=Path(out_dir) if out_dir else None)
    metric = result.metric.removeprefix("holdout_")
    first = result.runs[0]
    table = Table(title=f"turbexp compare {result.name}: {sizes(result.runs)}; 95 % intervals")
    for column in ("experiment", "features → estimator", result.metric,
                   f"minus {first.label}", "verdict", "physics baseline", "MLflow run"):
        table.add_column(column, overflow="fold")
    for r in result.runs:
        score = r.scores.get(metric)
        difference = r.difference.get(metric)
        table.add_row(r.label, f"{r.features} → {r.estimator}",
                      score.text(4) if score else "n/a",
                      difference.text(3) if difference else "",
                      result.verdict(r) if difference else "",
                      "yes" if r.baseline else "", r.run_id)
    out.print(table)
    for path in result.files:
        out.print(f"wrote {path}", soft_wrap=True)
    out.print(f"MLflow comparison run {result.run_id}")


@cli.command()
def plugins() -> None:
    """Installed plugins with their kind, package and version; broken ones with their error."""
    from turbexp.plugins import load_registry

    found = load_registry()
    table = Table(title="turbexp plugins")
    for column in ("kind", "name", "package", "version", "entry point"):
        table.add_column(column)
    for info in found.all():
        table.add_row(info.kind, info.name, info.package, info.version, info.entry_point)
    for command in found.commands.values():
        shadowed = " (a built-in of that name wins)" if command.name in cli.commands else ""
        table.add_row("command", command.name + shadowed, command.package, command.version,
                      command.entry_point)
    out.print(table, soft_wrap=True)
    for failure in found.failures:
        console.print(f"[red]failed to load[/] {failure.entry_point} ({failure.package} "
                      f"{failure.version}): {escape(failure.error)}", soft_wrap=True)


@cli.command()
@click.argument("model_uri")
@click.argument("maps", nargs=-1, required=True)
@click.option("--out", "out_dir", default="predictions", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the CSV and FITS outputs.")
@click.option("--max-masked", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Skip tiles with a larger fraction of masked pixels.")
@click.option("--pixel-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="PC", help="The maps' pixel side in pc (instead of their headers').")
@click.option("--distance", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="PC", help="The clouds' distance in pc, for maps whose pixels are "
                                 "angles.")
@click.option("--ignore-scale", is_flag=True,
              help="Cut tiles of the model's image size in pixels, whatever they cover.")
def predict(model_uri: str, maps: tuple[str, ...], out_dir: str, max_masked: float,
            pixel_scale: float | None, distance: float | None, ignore_scale: bool) -> None:
    """Spectral index n (or class probability) of column-density MAPS (FITS), tile by tile.

    MODEL_URI: an experiment's name (its newest registered model), a run id, runs:/RUN_ID,
    models:/NAME@ALIAS, models:/NAME/VERSION or experiment:NAME.

    Tiles cover what the model's training images covered (in pc), at each map's pixel
    scale, and are resampled to the model's image size.
    """
    from pathlib import Path

    from turbexp.commands.predict import ScaleOptions, predict_maps
    from turbexp.conformal import LEVEL
    from turbexp.tracking import existing_store

    existing_store()
    results = predict_maps(model_uri, list(maps), Path(out_dir), max_masked=max_masked,
                           scale=ScaleOptions(pixel_scale, distance, ignore_scale))
    table = Table(title=f"turbexp predict {model_uri}")
    for column in ("map", "quantity", "value ± spread",
                   f"calibrated P or {LEVEL * 100:g} % interval", "tiles used", "tile",
                   "masked fraction", "output"):
        table.add_column(column)
    for r in results:
        tile = f"{r.tiles.size} px" if r.scale is None else \
            f"{r.tiles.size} px = {r.scale.tile_pc:.3g} pc"
        if r.calibrated is not None:
            interval = "P = {:.3f} [{:.3f}, {:.3f}]".format(*r.calibrated)
        elif r.interval is None:
            interval = ""
        elif r.halfwidth < float("inf"):
            interval = (f"{r.mean:.3f} ± {r.halfwidth:.3f} "
                        f"[{r.interval[0]:.3f}, {r.interval[1]:.3f}]")
        else:
            interval = "unbounded: too few test maps to set it"
        table.add_row(str(r.observed.path), r.quantity, f"{r.mean:.4g} ± {r.spread:.2g}",
                      interval, f"{r.n_tiles} / {r.n_possible}", tile,
                      f"{r.observed.masked_fraction:.3f}", str(r.output))
    out.print(table)


@cli.command()
@click.argument("more_real", nargs=-1, metavar="")
@click.option("--real", multiple=True, metavar="FILES...",
              help="Observed maps (FITS); every argument up to the next option counts, so "
                   "`--real maps/*.fits` works.")
@click.option("--simulated", metavar="CAMPAIGN", help="Campaign file giving the simulated maps.")
@click.option("--count", type=int, default=None,
              help="Maps to show, half real and half simulated (default 20; even).")
@click.option("--seed", type=int, default=None,
              help="Seed of the draw and the order (default: a random one, recorded).")
@click.option("--session", "session_name", default=None, metavar="NAME_OR_PATH",
              help="A name under TURBEXP_HOME/quiz/ or a folder; an existing session resumes.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; one off this machine also needs --allow-remote.")
@click.option("--allow-remote", is_flag=True,
              help="Let --host be an address other machines can reach (the quiz has no login).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@_jobs_option
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def quiz(more_real: tuple[str, ...], real: tuple[str, ...], simulated: str | None,
         count: int | None, seed: int | None, session_name: str | None, host: str,
         allow_remote: bool, port: int, jobs: int | None, no_progress: bool) -> None:
    """A web page asking a person whether each map is real or simulated; the score goes to MLflow.

    Answers are saved as they are given; run again with the same --session to resume.
    """
    from turbexp.commands import quiz as q
    from turbexp.commands.quiz_server import bind, serve
    from turbexp.paths import cache_dir
    from turbexp.store import SimulationStore

    _check_host(host, allow_remote, "the quiz")
    real_files = [*real, *more_real]
    directory = q.session_dir(session_name)
    if q.QuizSession.exists(directory):
        session = q.QuizSession(directory)
        session.check_inputs(real_files, simulated, count, seed)
        server = bind(host, port)
    else:
        count = q.DEFAULT_COUNT if count is None else count
        inputs = q.check_inputs(real_files, simulated, count)
        server = bind(host, port)
        session = None
    try:
        if session is None:
            session = q.build_session(
                inputs, directory, SimulationStore(cache_dir()), count=count,
                seed=q.new_seed() if seed is None else seed, jobs=jobs,
                show_progress=not no_progress,
                warn=lambda m: console.print(f"[yellow]warning:[/] {escape(m)}"))
        with session.hold():
            serve(server, session, lambda m: out.print(escape(m), soft_wrap=True))
    finally:
        server.server_close()


def _check_host(host: str, allow_remote: bool, what: str) -> None:
    """A server binds an address other machines reach only when asked to, and says so."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return
    if not allow_remote:
        raise UserError(f"{host} can be reached from other machines, and {what} has no "
                        "login; bind 127.0.0.1, or add --allow-remote to expose it",
                        field="--host")
    console.print(f"[yellow]warning:[/] {what} listens on {host}: anyone who can reach this "
                  "machine can use it", soft_wrap=True)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; one off this machine also needs --allow-remote.")
@click.option("--allow-remote", is_flag=True,
              help="Let --host be an address other machines can reach (the UI has no login).")
@click.option("--port", default=5000, show_default=True, type=int)
def ui(host: str, allow_remote: bool, port: int) -> None:
    """Serve the MLflow UI for the tracking store in use."""
    import mlflow

    _check_host(host, allow_remote, "the MLflow UI")
    uri = mlflow.get_tracking_uri()
    console.print(f"MLflow UI for {uri} on http://{host}:{port}")
    # a named address answers requests that name it only (MLflow's DNS-rebinding guard);
    # a wildcard keeps MLflow's default: localhost and private addresses
    named = [] if host in ("0.0.0.0", "::") else ["--allowed-hosts", f"{host},{host}:{port}"]
    # MLflow's app (turbexp.mlflow_ui) opening on training runs, in one worker process (one
    # user; MLflow's default of 4 takes four times as long to start); the warning MLflow's
    # server gives about its own dependency is not the user's business
    os.environ["PYTHONWARNINGS"] = "ignore:starlette.middleware.wsgi is deprecated"
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
                               uri, "--host", host, "--port", str(port), *named,
                               "--app-name", "turbexp", "--workers", "1"])


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one message and exit status 2, never a traceback."""
    interrupt.install()
    try:
        cli.main(args=argv, prog_name="turbexp", standalone_mode=False)
    except UserError as exc:
        for line in str(exc).splitlines():
            console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True, highlight=False)
        sys.exit(EXIT_USER_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USER_ERROR)
    except (KeyboardInterrupt, click.exceptions.Abort):
        pass
    else:
        return
    # interrupted: the frames of the interrupted call are gone, so the store is free again
    if "turbexp.tracking" in sys.modules:
        sys.modules["turbexp.tracking"].end_unfinished()
    console.print("interrupted")
    sys.exit(130)


if __name__ == "__main__":
    main()

