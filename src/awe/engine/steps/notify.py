"""Built-in kind ``notify``: a message to people, as a webhook POST or an email over SMTP.

``with: {message, to, subject, webhook, payload, headers}``. With ``to`` (an address or a list)
it is an email through the SMTP server of the settings (``AWE_SMTP_*``); otherwise a JSON POST
to ``webhook`` or, when that is not given, to ``AWE_NOTIFY_WEBHOOK_URL``. The webhook body is
``payload`` when given, else ``{"text", "run_id", "step", "idempotency_key"}``. Nothing is sent
in a dry run. SMTP answers 4xx (try later) are retryable, 5xx (refused) are not.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING, Any

from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.errors import StepError
from awe.engine.registry import step_kind
from awe.engine.steps.http import parse_request, send

if TYPE_CHECKING:  # a step kind's module is loaded to check a file, without settings
    from awe.core.config import Settings

KEYS = frozenset({"message", "to", "subject", "webhook", "payload", "headers", "from"})


@step_kind(keys=KEYS)
def run_notify(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Send the notification; the output says where it went."""
    if not isinstance(params, dict):
        raise ValidationFailed("notify needs with: {message: …, to: … or webhook: …}")
    unknown = [k for k in params if k not in KEYS]
    if unknown:
        raise ValidationFailed(
            f"notify: with.{unknown[0]} is not a notify parameter ({', '.join(sorted(KEYS))})"
        )
    if params.get("to"):
        return _email(ctx, params)
    url = params.get("webhook") or ctx.settings.notify_webhook_url
    if not url:
        raise ValidationFailed(
            "notify needs with.to (email addresses) or with.webhook (a URL),"
            " or AWE_NOTIFY_WEBHOOK_URL set"
        )
    return _webhook(ctx, params, str(url))


def _webhook(ctx: StepContext, params: dict[str, Any], url: str) -> dict[str, Any]:
    payload = params.get("payload")
    if payload is None:
        if not isinstance(params.get("message"), str):
            raise ValidationFailed("notify: with.message (text) or with.payload is required")
        payload = {
            "text": params["message"],
            "run_id": ctx.run_id,
            "step": ctx.step_key,
            "idempotency_key": ctx.idempotency_key,
        }
    request = parse_request(
        ctx, {"method": "POST", "url": url, "json": payload, "headers": params.get("headers")}
    )
    if ctx.dry_run:
        ctx.log(f"dry run: webhook to {url} not sent")
        return {"channel": "webhook", "url": url, "dry_run": True}
    # The default webhook is the operator's (AWE_NOTIFY_WEBHOOK_URL), like a provider's URL;
    # a step's own webhook: is checked like any request.
    trusted = url if not params.get("webhook") else None
    response = send(ctx, request, trusted=trusted)
    return {"channel": "webhook", "url": url, "status": response["status"]}


def _email(ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
    recipients = params["to"] if isinstance(params["to"], list) else [params["to"]]
    if not all(isinstance(r, str) and "@" in r for r in recipients):
        raise ValidationFailed(f"notify: with.to must be email addresses, not {params['to']!r}")
    if not isinstance(params.get("message"), str):
        raise ValidationFailed("notify: with.message (the email's text) is required")
    settings = ctx.settings
    message = EmailMessage()
    message["From"] = str(params.get("from") or settings.smtp_from)
    message["To"] = ", ".join(recipients)
    message["Subject"] = str(params.get("subject") or f"awe: {ctx.step_key}")
    message["Message-ID"] = make_msgid(domain="awe.local")
    # Receivers may drop duplicates of an at-least-once delivery by this key.
    message["X-Awe-Idempotency-Key"] = ctx.idempotency_key
    message.set_content(params["message"])
    if ctx.dry_run:
        ctx.log(f"dry run: email to {', '.join(recipients)} not sent")
        return {"channel": "email", "to": recipients, "dry_run": True}
    _deliver(settings, message, recipients)
    ctx.log(f"email sent to {', '.join(recipients)}")
    return {"channel": "email", "to": recipients, "message_id": message["Message-ID"]}


def _deliver(settings: Settings, message: EmailMessage, recipients: list[str]) -> None:
    where = f"SMTP {settings.smtp_host}:{settings.smtp_port}"
    smtp_class = smtplib.SMTP_SSL if settings.smtp_security == "ssl" else smtplib.SMTP
    try:
        with smtp_class(settings.smtp_host, settings.smtp_port, timeout=settings.http_timeout) as s:
            if settings.smtp_security == "starttls":
                s.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                password = (
                    settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                )
                s.login(settings.smtp_username, password)
            s.send_message(message, to_addrs=recipients)
    except smtplib.SMTPAuthenticationError as exc:
        raise StepError(
            f"{where} refused the login of {settings.smtp_username!r} ({exc.smtp_code})",
            category="permission",
            retryable=False,
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {code for code, _ in exc.recipients.values()}
        raise StepError(
            f"{where} refused the recipients {', '.join(exc.recipients)}",
            category="smtp:refused",
            retryable=all(400 <= code < 500 for code in codes),
        ) from None
    except smtplib.SMTPResponseException as exc:
        said = exc.smtp_error
        text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
        raise StepError(
            f"{where} answered {exc.smtp_code}: {text}",
            category=f"smtp:{exc.smtp_code}",
            retryable=400 <= exc.smtp_code < 500,
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise StepError(
            f"cannot deliver through {where}: {exc or type(exc).__name__}",
            category="connection",
            retryable=True,
        ) from None
