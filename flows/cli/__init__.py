"""The ``loyalty`` command: a Typer app for the demo, the daily run, the generator, importers and serving.

``app`` is the entry point (``loyalty = "flows.cli:app"``); ``python -m flows.cli`` runs it too. One module per
command group; each imports the engine lazily, inside its commands, so ``loyalty --help`` starts fast:

- ``run``: ``run``, ``backfill``, ``missed``, ``demo``, ``why`` (the daily run, its replay and what it still owes, a
  customer's plan explained)
- ``data``: ``import online-retail``, ``synth`` (contract tables from a shop export or a generated shop)
- ``profile``: ``profile``, ``segments check|migration``, ``clv fit`` (the customer profile and what is built on it)
- ``recommend``: ``recommend`` and ``recommend evaluate`` (top-k products from an interactions CSV)
- ``campaigns``: ``campaigns check``, ``simulate``, ``adhoc`` (the catalog checked, played day by day, a one-off send)
- ``ops``: ``serve``, ``serve-unsubscribe``, ``process-feedback``, ``order-updates``, ``attribution``, ``forget``,
  ``retention apply`` (run folders past the retention period keep only their summaries), ``setup-ops`` (alerts)
- ``waves``: ``send-wave`` (one wave of a planned day sent again by hand, the ledger keeping it exactly once)
- ``server``: ``server start`` (a lasting Prefect server on PostgreSQL), ``server local-postgres`` (a throwaway
  cluster for development)
- ``calls``: ``calls list``, ``calls record`` (support's call list of a day, the outcomes of the calls)
- ``audiences``: ``audiences export`` (a segment's hashed customer list for an ad platform)
- ``survey``: ``survey report --week YYYY-Www`` (the after-delivery survey's weekly NPS report)
- ``common``: helpers several groups share (Prefect's defaults, date options, progress bars)
- ``console``: the shared consoles and ``fail()``, the one way to fail (a red line on stderr, exit code 2)

The commands are registered here, in the order ``loyalty --help`` lists them.
"""

from __future__ import annotations

import typer

from flows.cli import audiences, calls, campaigns, data, ops, profile, recommend, run, server, survey, waves

app = typer.Typer(help="Loyalty Flows: a retention engine for online shops, on Prefect.", no_args_is_help=True)

app.command("simulate")(campaigns.simulate)
app.command()(run.run)
app.command()(run.demo)
app.command()(data.synth)
app.command()(profile.profile)
app.command()(run.backfill)
app.command()(run.missed)
app.command("serve-unsubscribe")(ops.serve_unsubscribe_command)
app.command("process-feedback")(ops.process_feedback_command)
app.command()(run.why)
app.command()(ops.serve)
app.command()(ops.attribution)
app.command("order-updates")(ops.order_updates_command)
app.command("forget")(ops.forget_command)
app.command("setup-ops")(ops.setup_ops_command)
app.command()(campaigns.adhoc)
app.command("send-wave")(waves.send_wave_command)

app.add_typer(data.import_app, name="import")
app.add_typer(recommend.recommend_app, name="recommend")
app.add_typer(campaigns.campaigns_app, name="campaigns")
app.add_typer(profile.clv_app, name="clv")
app.add_typer(profile.segments_app, name="segments")
app.add_typer(ops.retention_app, name="retention")
app.add_typer(server.server_app, name="server")
app.add_typer(calls.calls_app, name="calls")
app.add_typer(audiences.audiences_app, name="audiences")
app.add_typer(survey.survey_app, name="survey")

__all__ = ["app"]
