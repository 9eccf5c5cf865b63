"""Intake: turn a ticket into an `Intake` (identifiers, product area, playbook, urgency …).

Layer 1 (`rules.rule_intake`) is deterministic and needs no model: `extraction` and `sdks` pull the
identifiers, `routing` scores the playbooks' weighted keywords (a product area is a playbook id),
`signals` gives urgency, blast radius, timeframe, language and issue type, `injection` flags suspected
prompt injection. Layer 2 (`refinement.refine_intake`) asks a small model to confirm or correct it.
"""

from triage.intake.extraction import extract_emails, extract_identifiers
from triage.intake.injection import detect_injection
from triage.intake.refinement import (
    IntakeRefinement,
    intake_prompt,
    intake_system_prompt,
    merge_refinement,
    refine_intake,
)
from triage.intake.routing import route, score_playbooks
from triage.intake.rules import rule_intake
from triage.intake.scan import MAX_PER_TYPE
from triage.intake.sdks import extract_sdks
from triage.intake.signals import detect_language

__all__ = [
    "MAX_PER_TYPE",
    "IntakeRefinement",
    "detect_injection",
    "detect_language",
    "extract_emails",
    "extract_identifiers",
    "extract_sdks",
    "intake_prompt",
    "intake_system_prompt",
    "merge_refinement",
    "refine_intake",
    "route",
    "rule_intake",
    "score_playbooks",
]
