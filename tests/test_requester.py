"""Person look-ups are scoped to the requester: their record email and ids from their own messages."""

from triage.models import AuthorRole, Comment, Identifiers, Organization, Person, Ticket
from triage.requester import requester_scope


def ticket() -> Ticket:
    return Ticket(
        id=1,
        subject="Flag false for user_req",
        description="My distinct_id is user_req, my colleague bob@acme.io sees it fine",
        requester=Person(id=7, name="Jane", email="Jane@Acme.io"),
        organization=Organization(id=42, name="Acme"),
        comments=[
            Comment(author_id=7, body="Also try anon_42, that's my other device"),
            Comment(author_id=99, author_role=AuthorRole.customer, body="I'm Bob, my id is user_bob"),
            Comment(author_id=3, author_role=AuthorRole.agent, body="Could it be user_agent_guess?"),
        ],
    )


def test_only_the_requesters_email_and_own_ids() -> None:
    ids = Identifiers(
        distinct_ids=["user_req", "anon_42", "user_bob", "user_agent_guess"], emails=["bob@acme.io"]
    )
    scope = requester_scope(ticket(), ticket(), ids)
    assert scope == {
        "requester_email": "jane@acme.io",
        "requester_ids": ["user_req", "anon_42"],
        "organization_refs": ["42", "Acme"],
    }


def test_without_author_ids_customer_comments_count_as_the_requesters() -> None:
    t = ticket().model_copy(update={"requester": Person(email="jane@acme.io")})
    scope = requester_scope(t, t, Identifiers(distinct_ids=["user_bob", "user_agent_guess"]))
    assert scope["requester_ids"] == ["user_bob"]
