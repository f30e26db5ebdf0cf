"""The only package that talks to kodosumi 1.1: owner tokens, launches through the
panel's proxy, reconciling a launch in doubt, execution status and error
(``launching``), the role table (``roles``), the flows and their forms (``flows``).

Page and API controllers, the timer and the system-schedule sync ask it; none of them
reads kodosumi's tables or calls its routes itself.
"""

from kodosumi_timer.bridge.flows import PanelFlows, RegisteredFlows, Unreadable, rendered
from kodosumi_timer.bridge.launching import (
    MARKER_HEADER,
    MAY_HAVE_STARTED,
    Launcher,
    LaunchKind,
    LaunchOutcome,
    NoAnswerInTime,
    PanelLauncher,
    Reconciled,
    Unanswered,
    outcome_of,
)
from kodosumi_timer.bridge.roles import ROLES, OwnerState, Roles, RoleTable, role_uuid
from kodosumi_timer.bridge.tokens import TOKEN_ALGORITHM, flow_path, mint_token

__all__ = [
    "MARKER_HEADER", "MAY_HAVE_STARTED", "ROLES", "TOKEN_ALGORITHM", "LaunchKind",
    "LaunchOutcome", "Launcher", "NoAnswerInTime", "OwnerState", "PanelFlows",
    "PanelLauncher", "Reconciled", "RegisteredFlows", "RoleTable", "Roles", "Unanswered",
    "Unreadable", "flow_path", "mint_token",
    "outcome_of", "rendered", "role_uuid",
]
