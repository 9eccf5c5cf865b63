"""Signals of a ticket besides its identifiers: urgency, blast radius, timeframe, language, issue type,
symptom keywords and missing information."""

from __future__ import annotations

import itertools
import re

from triage.intake.extraction import MONTHS
from triage.intake.routing import KeywordIndex, Prepared, normalise, phrase_hits, phrases
from triage.intake.scan import HEURISTIC_CHARS, Bag, word_list
from triage.models import BlastRadius, Identifiers, IssueType, Urgency
from triage.playbooks import Playbook

PRIORITY_URGENCY = {"urgent": Urgency.p1, "high": Urgency.p2, "normal": Urgency.p3, "low": Urgency.p4}
_P1_WORDS = phrases(
    *word_list(
        "production down|prod down|prod is down|production is down|site down|site is down|outage|"
        "data loss|losing data|lost data|sev1|sev 1|sev-1|p1|critical|emergency|completely down|"
        "all users affected|caído|caida|pérdida de datos|crítico|ausfall|datenverlust|kritisch|"
        "panne|perte de données|critique|fora do ar|perda de dados"
    )
)
_P2_WORDS = phrases(
    *word_list(
        "blocking|blocker|blocked|urgent|urgently|asap|as soon as possible|high priority|launch|"
        "go-live|revenue|urgente|bloqueante|bloqueado|dringend|blockiert|bloquant|bloqué|bloqueando"
    )
)
_ALL_USERS = phrases(
    *word_list(
        "all users|all our users|all of our users|every user|all customers|all of our customers|"
        "all our customers|everyone|every recording|all recordings|all events|all sessions|nobody|"
        "no one|entire|all enterprise customers|todos los usuarios|todos nuestros usuarios|"
        "alle nutzer|alle benutzer|alle user|tous les utilisateurs|tous nos utilisateurs|"
        "todos os usuários|todos os utilizadores|100% of"
    )
)
_SOME_USERS = phrases(
    *word_list(
        "some users|some of our users|some of our|a chunk of|a few users|certain users|a subset|"
        "a portion of|intermittent|intermittently|sometimes|some customers|a handful|part of our|"
        "algunos usuarios|algunos|a veces|einige nutzer|manche|manchmal|certains utilisateurs|"
        "parfois|alguns usuários|às vezes"
    )
)
_SINGLE_USER = phrases(
    *word_list(
        "one user|a single user|a specific user|one customer|one of our users|only for me|"
        "only one user|this user|my account|un usuario|ein nutzer|ein benutzer|un utilisateur|"
        "um usuário"
    )
)
_TIMEFRAME_TAIL = r"[ \t]+((?:[^.,;!?\n<>()]|\.(?=\w)){2,70})"
_TIMEFRAME_STRONG = re.compile(
    r"\b(ever since|since|as of|desde|seit|depuis|a partir de)\b" + _TIMEFRAME_TAIL, re.IGNORECASE
)
_TIMEFRAME_WEAK = re.compile(r"\b(after|starting|started|beginning)\b" + _TIMEFRAME_TAIL, re.IGNORECASE)
_TIME_HINT = re.compile(
    r"\d|yesterday|today|tonight|morning|night|week|month|day|hour|monday|tuesday|wednesday|thursday|friday"
    r"|saturday|sunday|upgrad|updat|deploy|releas|migrat|switch|install|chang|ayer|semana|actualiz|gestern"
    r"|woche|update|hier|semaine|mise à jour|ontem|atualiz|\b" + MONTHS + r"\b",
    re.IGNORECASE,
)
_DURATION = re.compile(
    r"\b(?:for|in|over|during)[ \t]+the[ \t]+(?:past|last)[ \t]+(?:\d{1,3}|few|couple of|two|three|several)"
    r"[ \t]+(?:minutes|hours|days|weeks|months)\b"
    r"|\b(?:yesterday|this morning|last night|today|earlier today)\b",
    re.IGNORECASE,
)

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        word_list(
            "the|a|i|and|is|are|we|our|not|with|this|that|have|has|for|it|to|of|in|on|at|my|your|"
            "but|you|since|when|from|they|can|does|doesn|don|isn|didn|did|was|were|be|been|there|"
            "what|which|would|should|could|hi|hello|thanks|please"
        )
    ),
    "es": frozenset(
        word_list(
            "el|la|los|las|que|de|en|no|una|un|con|para|por|nuestra|nuestro|nuestros|está|están|"
            "pero|hola|gracias|se|muestra|cómo|qué|y|es|del|al|sí|también|cuando|desde|porque"
        )
    ),
    "de": frozenset(
        word_list(
            "der|die|das|und|ist|nicht|wir|ich|mit|für|auf|ein|eine|unsere|unser|sind|bei|seit|"
            "auch|hallo|danke|wird|werden|haben|es|den|dem|im|zu|von|wenn|aber"
        )
    ),
    "fr": frozenset(
        word_list(
            "le|la|les|et|est|nous|pas|avec|pour|une|un|des|dans|sur|notre|nos|ne|bonjour|merci|"
            "depuis|je|qui|du|au|que|ce|cette|sont|mais|quand"
        )
    ),
    "pt": frozenset(
        word_list(
            "o|a|os|as|que|não|com|para|uma|um|nosso|nossa|está|estão|mas|olá|obrigado|obrigada|"
            "você|em|do|da|dos|das|no|na|é|quando|desde|também"
        )
    ),
    "it": frozenset(
        word_list(
            "il|lo|gli|che|non|con|per|una|della|nostro|nostra|ciao|grazie|è|sono|ma|anche|quando|del|nel"
        )
    ),
    "nl": frozenset(
        word_list("de|het|een|en|niet|wij|we|met|voor|onze|is|dat|bij|ook|maar|zijn|wordt|hallo|bedankt")
    ),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    """ISO 639-1 code by stopword counts (words shared by several languages count fractionally)."""
    owners: dict[str, int] = {}
    for words in _STOPWORDS.values():
        for w in words:
            owners[w] = owners.get(w, 0) + 1
    scores = dict.fromkeys(_STOPWORDS, 0.0)
    for i, m in enumerate(_WORD.finditer((text or "")[:20_000].lower())):
        if i >= 3000:
            break
        word = m.group(0)
        share = owners.get(word)
        if not share:
            continue
        for lang, words in _STOPWORDS.items():
            if word in words:
                scores[lang] += 1.0 / share
    best = max(scores, key=lambda lang: scores[lang])
    if best != "en" and scores[best] >= 2.0 and scores[best] > scores["en"] * 1.1:
        return best
    return "en"


def urgency_of(priority: str | None, prepared: Prepared) -> Urgency:
    base = PRIORITY_URGENCY.get((priority or "").lower(), Urgency.p3)
    order = [Urgency.p1, Urgency.p2, Urgency.p3, Urgency.p4]
    words = Urgency.p4
    if phrase_hits(_P1_WORDS, prepared, 1):
        words = Urgency.p1
    elif phrase_hits(_P2_WORDS, prepared, 1):
        words = Urgency.p2
    return min(base, words, key=order.index)


def blast_radius_of(prepared: Prepared) -> BlastRadius:
    if phrase_hits(_SOME_USERS, prepared, 1):
        return BlastRadius.some_users
    if phrase_hits(_ALL_USERS, prepared, 1):
        return BlastRadius.all_users
    if phrase_hits(_SINGLE_USER, prepared, 1):
        return BlastRadius.single_user
    return BlastRadius.unknown


_CONJUNCTION = re.compile(
    r"\b(?:which|that|and|but|so|because|when|while|although|though|where|y|pero|porque|und|aber|weil"
    r"|et|mais|parce|e|mas|porque)\b",
    re.IGNORECASE,
)


_TIMEFRAME_STOP = frozenset(word_list("our|my|their|your|the|nuestros|nuestras|unsere|nos|nossos|nossas"))


def _timeframe_phrase(m: re.Match[str]) -> str | None:
    if not _TIME_HINT.search(m.group(2)):
        return None
    words = _CONJUNCTION.split(m.group(2), maxsplit=1)[0].split()
    for i, word in enumerate(words):
        if i >= 2 and word.lower() in _TIMEFRAME_STOP:
            words = words[:i]
            break
    return " ".join([m.group(1), *words][:9])


def timeframe_of(text: str) -> str:
    """When it started, in the customer's words: the most informative of the first "since …" phrases."""
    text = text[:HEURISTIC_CHARS]
    for pattern in (_TIMEFRAME_STRONG, _TIMEFRAME_WEAK):
        phrases = [p for m in itertools.islice(pattern.finditer(text), 20) if (p := _timeframe_phrase(m))]
        if phrases:
            return max(phrases[:3], key=len)
    m2 = _DURATION.search(text)
    return " ".join(m2.group(0).split()) if m2 else ""


# ---------------------------------------------------------------- issue type and symptom keywords

_ISSUE_WORDS: dict[IssueType, KeywordIndex] = {
    IssueType.how_to: phrases(
        *word_list(
            "how do i|how do we|how can i|how can we|how to|is it possible|can i|can we|is there a way|"
            "documentation|docs|best practice|cómo|como puedo|wie kann|comment|est-il possible|"
            "é possível|como faço"
        )
    ),
    IssueType.feature_request: phrases(
        *word_list(
            "feature request|would be great|would be nice|could you add|please add|support for|"
            "any plans|roadmap|wish|solicitud de función|funktionswunsch|demande de fonctionnalité"
        )
    ),
    IssueType.account: phrases(
        *word_list(
            "invoice|billing|charged|refund|password|2fa|two-factor|login|log in|sso|saml|invite|"
            "delete my account|cancel my|factura|rechnung|facture|fatura|reembolso|passwort"
        )
    ),
    IssueType.integration: phrases(
        *word_list(
            "integration|webhook|destination|hubspot|salesforce|segment|zapier|stripe|batch export|"
            "bigquery|snowflake|s3|slack|customer.io|braze"
        )
    ),
    IssueType.data: phrases(
        *word_list(
            "missing data|numbers don't match|numbers do not match|discrepancy|duplicate|duplicated|"
            "doesn't match|different numbers|wrong count|inflated|undercount|missing events|"
            "not showing up|stopped appearing|no llegan|fehlen|manquent"
        )
    ),
    IssueType.performance: phrases(
        *word_list(
            "slow|latency|timeout|timed out|performance|memory|bundle size|cpu|lag|laggy|freezes|oom|"
            "lento|langsam|lent"
        )
    ),
    IssueType.bug: phrases(
        *word_list(
            "bug|broken|error|not working|doesn't work|does not work|regression|since upgrading|"
            "since we upgraded|crash|crashes|returns false|blank|fails|failing|exception|no funciona|"
            "no aparece|no se muestra|funktioniert nicht|fehler|ne fonctionne pas|não funciona|"
            "não aparece"
        )
    ),
}
_ZENDESK_TYPE = {"problem": IssueType.bug, "incident": IssueType.bug, "question": IssueType.how_to}


def issue_type_of(prepared: Prepared, zendesk_type: str | None, area_lean: IssueType | None) -> IssueType:
    """The issue type by phrase counts, the Zendesk type and the type the area's playbook leans to."""
    scores: dict[IssueType, float] = {}
    for kind, index in _ISSUE_WORDS.items():
        hits = sum(phrase_hits(index, prepared).values())
        if hits:
            scores[kind] = min(hits, 3)
    if (zt := _ZENDESK_TYPE.get((zendesk_type or "").lower())) is not None:
        scores[zt] = scores.get(zt, 0) + 1.5
    if area_lean is not None:
        scores[area_lean] = scores.get(area_lean, 0) + 2
    if IssueType.bug in scores and IssueType.how_to in scores and zendesk_type != "question":
        scores[IssueType.how_to] -= 1  # "how can we fix this" in a bug report is still a bug
    if not scores:
        return IssueType.unknown
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else IssueType.unknown


# phrase (any language) → English GitHub search word, written "phrase=word|…"
_SYMPTOMS: dict[str, str] = dict(
    tuple(item.split("=", 1))  # type: ignore[misc]
    for item in word_list(
        "blank=blank|white screen=blank|white page=blank|empty player=blank|not showing=not showing|"
        "not showing up=not showing|not appearing=not showing|stopped appearing=not showing|"
        "missing=missing|duplicate=duplicate|duplicated=duplicate|returns false=returns false|"
        "returns undefined=undefined|undefined=undefined|slow=slow|timeout=timeout|"
        "timed out=timeout|crash=crash|crashes=crash|memory leak=memory leak|cors=CORS|csp=CSP|"
        "content security policy=CSP|reverse proxy=reverse proxy|proxy=proxy|ad blocker=ad blocker|"
        "adblock=ad blocker|cookie=cookie|cookies=cookie|consent=consent|identify=identify|"
        "reset=reset|bootstrap=bootstrap|local evaluation=local evaluation|"
        "react native=react native|next.js=nextjs|nextjs=nextjs|safari=safari|ios=ios|"
        "android=android|flutter=flutter|mobile=mobile|serverless=serverless|lambda=serverless|"
        "vercel=vercel|cloudflare=cloudflare|shopify=shopify|wordpress=wordpress|"
        "source maps=source maps|sourcemaps=source maps|minified=minified|reload=reload|"
        "no aparece=not showing|no se muestra=not showing|no llegan=not showing|en blanco=blank|"
        "móvil=mobile|nicht angezeigt=not showing|leer=blank|fehlen=missing|"
        "n'apparaît pas=not showing|ne s'affiche pas=not showing|vide=blank|manquent=missing|"
        "não aparece=not showing|não aparecem=not showing|em branco=blank|celular=mobile|"
        "app móvil=mobile|aplicativo=mobile"
    )
)
_SYMPTOMS = {normalise(phrase): word for phrase, word in _SYMPTOMS.items()}
_SYMPTOM_PHRASES = phrases(*_SYMPTOMS)
_METHOD_CALL = re.compile(r"\bposthog\.([A-Za-z_]\w{2,40})\s*\(")
_MARKUP = re.compile(r"<[^<>\n]{0,100}>")
_SUBJECT_WORD = re.compile(r"[A-Za-z][A-Za-z0-9.+#-]{2,30}")
_GENERIC = frozenset(
    word_list(
        "the|and|for|with|our|not|are|but|from|since|after|issue|problem|help|please|question|"
        "posthog|working|work|does|doesn|anymore|any|some|all|users|user|returns|showing|show|shows|"
        "only|when|what|why|how|can|cannot|can't|urgent|asap|hi|hello|team|support|ticket|still|"
        "into|upgrading|upgraded|yesterday|today|week|this|that|they|their|there|about|much|more|"
        "less|than|then|very|too|same|new|keeps|looks|look|seems|getting|get|got|has|have|had|was|"
        "were|been|being|will|would|should|could|your|you|its|it's|also|just|like|before|over|under|"
        "between|again|twice|every|each|other|another|where|which|who|whom|whose|while|need|needs|"
        "want|wants|using|use|used|via|per|out|off|down|without"
    )
)


def symptom_keywords(
    subject: str, text: str, ids: Identifiers, language: str, prepared: Prepared
) -> list[str]:
    bag = Bag(limit=8, max_len=60)
    for message in ids.error_messages[:1]:
        head = message.split(":", 1)[0].split(".")[-1]
        bag.add(
            head if head.endswith(("Error", "Exception")) and head not in ("Error", "Exception") else None
        )
    for m in _METHOD_CALL.finditer(text[:50_000]):
        bag.add(m.group(1))
        if len(bag.items) >= 3:
            break
    if language == "en":  # the customer's own one-line summary first
        id_values = {v.lower() for v in [*ids.flag_keys, *ids.event_names, *ids.distinct_ids, *ids.releases]}
        for m in _SUBJECT_WORD.finditer(_MARKUP.sub(" ", subject)[:300]):
            low = m.group(0).strip(".-").lower()
            if not (
                low in _GENERIC
                or low in id_values
                or low.startswith("posthog")
                or any(c.isdigit() for c in low)
            ):
                bag.add(low)
    hits: list[str] = []
    for phrase in phrase_hits(_SYMPTOM_PHRASES, prepared, 1):
        word = _SYMPTOMS.get(phrase)
        if word and word not in hits:
            hits.append(word)
    for word in hits[:4]:
        if not any(part in bag for part in word.split()):
            bag.add(word)
    return bag.items


def missing_info(book: Playbook, ids: Identifiers, timeframe: str) -> list[str]:
    missing: list[str] = []

    def present(requirement: str) -> bool:
        if requirement == "sdk":
            return bool(ids.sdks)
        if requirement == "sdk_version":
            return any(s.version for s in ids.sdks)
        if requirement == "timeframe":
            return bool(timeframe or ids.dates)
        return bool(getattr(ids, requirement, None))

    for requirement, label in book.required_info.items():
        options = [part.strip() for part in requirement.split("|") if part.strip()]
        if options and not any(present(option) for option in options):
            missing.append(label or requirement)
    return missing
