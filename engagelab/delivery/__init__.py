"""Delivery: providers and the message ledger.

* :mod:`~engagelab.delivery.protocol`: what a provider gets (:class:`OutgoingMessage`,
  :class:`MessageBatch`) and answers (:class:`DeliveryResult`, :class:`BatchResult`);
* :mod:`~engagelab.delivery.registry`: which provider serves a channel
  (:func:`provider_for`, from ``engagelab.yaml`` and the environment);
* providers: :class:`OutboxProvider` (a JSON Lines file per run, the default),
  :class:`SmtpProvider`, :class:`HttpProvider` (webhooks and push gateways),
  :class:`InboxProvider` (pulled channels, read with :func:`inbox`),
  :class:`RemarketingProvider` (hashed audience files, synced per run with
  :func:`sync_audience`: full + add/remove files, history in :func:`sync_history`);
* :mod:`~engagelab.delivery.ledger`: one row per message key and all the SQL over it.

Names are imported on first use, so ``import engagelab.delivery`` is cheap.

Example:
    >>> from engagelab.delivery import OutgoingMessage, SmtpError
    >>> issubclass(SmtpError, ConnectionError)
    True
"""

from typing import TYPE_CHECKING

from engagelab.exports import lazy_exports

if TYPE_CHECKING:
    from engagelab.delivery.audience_sync import AudienceSync, sync_audience, sync_history
    from engagelab.delivery.http import HttpProvider
    from engagelab.delivery.inbox import InboxMessage, InboxProvider, InboxResult, dismiss, inbox
    from engagelab.delivery.outbox import OutboxProvider, read_outbox
    from engagelab.delivery.protocol import (
        BatchResult,
        DeliveryResult,
        MessageBatch,
        OutgoingMessage,
        Provider,
        deliver_batch,
    )
    from engagelab.delivery.registry import PROVIDER_TYPES, provider_config, provider_for
    from engagelab.delivery.remarketing import RemarketingProvider, export_audience
    from engagelab.delivery.smtp import SmtpError, SmtpProvider

_EXPORTS = {
    "BatchResult": "engagelab.delivery.protocol",
    "DeliveryResult": "engagelab.delivery.protocol",
    "MessageBatch": "engagelab.delivery.protocol",
    "OutgoingMessage": "engagelab.delivery.protocol",
    "Provider": "engagelab.delivery.protocol",
    "deliver_batch": "engagelab.delivery.protocol",
    "PROVIDER_TYPES": "engagelab.delivery.registry",
    "provider_config": "engagelab.delivery.registry",
    "provider_for": "engagelab.delivery.registry",
    "OutboxProvider": "engagelab.delivery.outbox",
    "read_outbox": "engagelab.delivery.outbox",
    "SmtpError": "engagelab.delivery.smtp",
    "SmtpProvider": "engagelab.delivery.smtp",
    "HttpProvider": "engagelab.delivery.http",
    "InboxMessage": "engagelab.delivery.inbox",
    "InboxProvider": "engagelab.delivery.inbox",
    "InboxResult": "engagelab.delivery.inbox",
    "dismiss": "engagelab.delivery.inbox",
    "inbox": "engagelab.delivery.inbox",
    "RemarketingProvider": "engagelab.delivery.remarketing",
    "export_audience": "engagelab.delivery.remarketing",
    "AudienceSync": "engagelab.delivery.audience_sync",
    "sync_audience": "engagelab.delivery.audience_sync",
    "sync_history": "engagelab.delivery.audience_sync",
}

__all__ = [
    "AudienceSync",
    "BatchResult",
    "DeliveryResult",
    "HttpProvider",
    "InboxMessage",
    "InboxProvider",
    "InboxResult",
    "MessageBatch",
    "OutboxProvider",
    "OutgoingMessage",
    "PROVIDER_TYPES",
    "Provider",
    "RemarketingProvider",
    "SmtpError",
    "SmtpProvider",
    "deliver_batch",
    "dismiss",
    "export_audience",
    "inbox",
    "provider_config",
    "provider_for",
    "read_outbox",
    "sync_audience",
    "sync_history",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
