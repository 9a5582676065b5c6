"""``celeriac -A chaos.app worker`` (or ``beat``): the chaos app, set up from the environment
that ``chaos.lab`` gives each process."""

from __future__ import annotations

import os

from chaos.tasks import AppSettings, create

app = create(AppSettings.from_environment(os.environ))
