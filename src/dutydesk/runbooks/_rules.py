"""Signoff rules: "N signoffs from people holding at least role R", several per kind.

Each signoff counts once. Roles are ordered (viewer < operator < approver < admin) and a
rule accepts anyone at or above its role, so assigning signoffs to the strictest rules first
is optimal: whoever meets a strict rule meets every looser one too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.people.models import Role, User
from dutydesk.runbooks._kinds import ChangeRefused, get_kind, known_kinds
from dutydesk.runbooks.models import ChangeRequest, SignoffRule

# Roles a rule may ask for: a viewer can change nothing, so cannot sign either.
RULE_ROLES = (Role.operator, Role.approver, Role.admin)
MAX_COUNT = 10


@dataclass(frozen=True)
class Rule:
    """One rule in force for a kind; `default` when it comes from the kind, not a row."""

    kind: str
    role: str
    count: int
    default: bool = False

    def describe(self) -> str:
        """`2 signoffs from approver (or higher)`."""
        noun = "signoff" if self.count == 1 else "signoffs"
        return f"{self.count} {noun} from {self.role} (or higher)"


def rules_for(session: Session, kind: str) -> list[Rule]:
    """The rules in force for `kind`: its rule rows, else the kind's defaults."""
    rows = session.scalars(
        select(SignoffRule).where(SignoffRule.kind == kind).order_by(SignoffRule.role)
    ).all()
    if rows:
        return [Rule(kind, row.role, row.count) for row in rows]
    return [Rule(kind, role, count, True) for role, count in get_kind(kind).default_rules]


def all_rules(session: Session) -> list[Rule]:
    """The rules in force for every registered kind (and any kind that has rule rows)."""
    kinds = set(known_kinds()) | set(session.scalars(select(SignoffRule.kind).distinct()))
    found: list[Rule] = []
    for kind in sorted(kinds):
        if kind in known_kinds():
            found += rules_for(session, kind)
        else:
            rows = session.scalars(select(SignoffRule).where(SignoffRule.kind == kind))
            found += [Rule(kind, row.role, row.count) for row in rows]
    return found


def _signer_role(user: User) -> Role | None:
    return Role(user.role) if user.active else None


def unmet(session: Session, change: ChangeRequest) -> list[tuple[Rule, int]]:
    """Each rule the active signoffs leave unmet, with how many more signoffs it needs."""
    rules = sorted(rules_for(session, change.kind), key=lambda r: Role(r.role).rank, reverse=True)
    roles = [_signer_role(s.user) for s in change.active_signoffs]
    left = sorted((role for role in roles if role is not None), key=lambda r: r.rank)
    found: list[tuple[Rule, int]] = []
    for rule in rules:
        need = Role(rule.role)
        taken = [role for role in left if role.includes(need)][: rule.count]
        for role in taken:
            left.remove(role)
        if len(taken) < rule.count:
            found.append((rule, rule.count - len(taken)))
    return found


def missing(session: Session, change: ChangeRequest) -> list[str]:
    """What the active signoffs leave unmet, readable ("1 more signoff from admin ...")."""
    return [
        f"{more} more {'signoff' if more == 1 else 'signoffs'} from {rule.role} (or higher)"
        for rule, more in unmet(session, change)
    ]


def may_sign(session: Session, change: ChangeRequest, user: User) -> bool:
    """Whether `user`'s role meets some rule of the request's kind."""
    role = _signer_role(user)
    return role is not None and any(
        role.includes(Role(rule.role)) for rule in rules_for(session, change.kind)
    )


def _check_rule(kind: str, role: str, count: int | None = None) -> Role:
    get_kind(kind)
    try:
        parsed = Role(role)
    except ValueError:
        raise ChangeRefused(
            422, f"unknown role {role!r}; use {', '.join(r.value for r in RULE_ROLES)}"
        ) from None
    if parsed not in RULE_ROLES:
        raise ChangeRefused(422, f"a {role} cannot sign off; use a role of operator or higher")
    if count is not None and not 1 <= count <= MAX_COUNT:
        raise ChangeRefused(422, f"count must be 1 to {MAX_COUNT}, not {count}")
    return parsed


def set_rule(session: Session, *, kind: str, role: str, count: int) -> SignoffRule:
    """Ask for `count` signoffs from `role` (or higher) on `kind` (replacing that role's count).

    The first rule row of a kind replaces the kind's defaults.
    """
    _check_rule(kind, role, count)
    row = session.scalar(
        select(SignoffRule).where(SignoffRule.kind == kind, SignoffRule.role == role)
    )
    if row is None:
        row = SignoffRule(kind=kind, role=role, count=count)
        session.add(row)
    else:
        row.count = count
    session.flush()
    return row


def remove_rule(session: Session, *, kind: str, role: str) -> None:
    """Drop the rule of `kind` for `role`; with no rows left, the kind's defaults apply."""
    _check_rule(kind, role)
    row = session.scalar(
        select(SignoffRule).where(SignoffRule.kind == kind, SignoffRule.role == role)
    )
    if row is None:
        raise ChangeRefused(404, f"no signoff rule for {kind} from {role}")
    session.delete(row)
    session.flush()
