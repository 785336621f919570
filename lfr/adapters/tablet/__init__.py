"""The officers' tablet: a FastAPI web app for live alerts and their adjudication.

Import `lfr.adapters.tablet.app.create_tablet_app`; this package stays import-light so `lfr.config`
and the CLI can load without FastAPI.
"""
