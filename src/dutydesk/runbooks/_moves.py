"""The one table of who may move a change request from one state to the next."""

from __future__ import annotations

from dataclasses import dataclass

from dutydesk.runbooks.models import ChangeState

S = ChangeState


@dataclass(frozen=True)
class Move:
    """One allowed state change: from which states, to which, by what action, by whom."""

    sources: tuple[ChangeState, ...]
    target: ChangeState
    action: str
    who: str


MOVES: tuple[Move, ...] = (
    Move((S.draft,), S.pending, "submit", "the author, or an operator (or higher)"),
    Move(
        (S.pending,),
        S.approved,
        "sign off",
        "nobody by hand: automatic when signoffs on the current data_version meet every rule",
    ),
    Move(
        (S.pending,),
        S.rejected,
        "reject",
        "a signer (a role that meets one of the kind's rules), not the author",
    ),
    Move(
        (S.approved,),
        S.pending,
        "revise",
        "the author, or an operator (or higher); every signoff is dropped",
    ),
    Move((S.draft, S.pending, S.approved), S.cancelled, "cancel", "the author, or an admin"),
    Move(
        (S.approved,),
        S.running,
        "run",
        "the run job, queued by the author or an operator (or higher); it re-checks the rules",
    ),
    Move((S.running,), S.done, "run job", "the run job, when the kind's execute returns"),
    Move((S.running,), S.failed, "run job", "the run job, when the kind's execute raises"),
)


def allowed(source: str, target: str) -> Move | None:
    """The move from `source` to `target`, if the table has one."""
    for move in MOVES:
        if move.target == target and source in move.sources:
            return move
    return None


def markdown_table() -> str:
    """The table as docs/runbooks.md shows it."""
    lines = ["| from | to | action | who may |", "|---|---|---|---|"]
    for move in MOVES:
        sources = ", ".join(s.value for s in move.sources)
        lines.append(f"| {sources} | {move.target.value} | {move.action} | {move.who} |")
    return "\n".join(lines)
