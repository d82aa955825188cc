"""The event names each sender's preset can produce: closed lists where the sender documents one.

`bridge check` compares a rule's `event:` with these. A name within a typo of a known one is an error
(`order/paid` for Shopify's `orders/paid`); any other unknown name is a warning, since senders add events.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class SenderEvents:
    """What a sender names its events, and whether the list is the sender's whole documented list."""

    names: tuple[str, ...]
    complete: bool
    prefixes: tuple[str, ...] = ()  # open families (WooCommerce's action.<hook>)
    where: str = ""  # where the event name is read, for messages


def _crud(resources: str, verbs: str, joiner: str) -> tuple[str, ...]:
    return tuple(f"{resource}{joiner}{verb}" for resource in resources.split() for verb in verbs.split())


_HUBSPOT_VERBS = "creation deletion propertyChange associationChange merge restore"
EVENTS: dict[str, SenderEvents] = {
    "woocommerce": SenderEvents(_crud("coupon customer order product", "created updated deleted restored", "."), True,
                                ("action.",), "the X-WC-Webhook-Topic header"),
    "shopify": SenderEvents((
        *_crud("orders", "cancelled create delete edited fulfilled paid partially_fulfilled updated risk_assessment_changed", "/"),
        *_crud("products collections customers draft_orders locations themes selling_plan_groups companies carts checkouts",
               "create update delete", "/"),
        "app/uninstalled", "app/scopes_update", "app_subscriptions/update", "app_purchases_one_time/update",
        "bulk_operations/finish", "customers/data_request", "customers/redact", "shop/redact", "shop/update",
        "customers/enable", "customers/disable", "customers/merge", "customers_marketing_consent/update",
        "customers_email_marketing_consent/update", "disputes/create", "disputes/update", "domains/create",
        "domains/update", "domains/destroy", "fulfillments/create", "fulfillments/update", "fulfillment_events/create",
        "fulfillment_events/delete", "fulfillment_orders/cancelled", "fulfillment_orders/fulfillment_request_submitted",
        "inventory_items/create", "inventory_items/update", "inventory_items/delete", "inventory_levels/connect",
        "inventory_levels/update", "inventory_levels/disconnect", "order_transactions/create", "refunds/create",
        "returns/request", "returns/approve", "returns/close", "returns/decline", "returns/cancel", "returns/reopen",
        "subscription_contracts/create", "subscription_contracts/update", "subscription_billing_attempts/success",
        "subscription_billing_attempts/failure", "tender_transactions/create", "themes/publish",
        "product_listings/add", "product_listings/update", "product_listings/remove"), False, (),
        "the X-Shopify-Topic header"),
    "stripe": SenderEvents((
        "checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed",
        "checkout.session.expired", "payment_intent.created", "payment_intent.succeeded", "payment_intent.payment_failed",
        "payment_intent.canceled", "payment_intent.processing", "payment_intent.requires_action", "charge.succeeded",
        "charge.failed", "charge.refunded", "charge.captured", "charge.dispute.created", "charge.dispute.closed",
        "invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed",
        "invoice.upcoming", "invoice.voided", "customer.created", "customer.updated", "customer.deleted",
        "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
        "customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
        "payment_link.created", "payment_link.updated", "product.created", "product.updated", "product.deleted",
        "price.created", "price.updated", "refund.created", "refund.updated", "subscription_schedule.created"),
        False, (), "the body's type"),
    "hubspot": SenderEvents((
        *_crud("contact company deal ticket product line_item", _HUBSPOT_VERBS, "."),
        "contact.privacyDeletion", "conversation.creation", "conversation.deletion", "conversation.privacyDeletion",
        "conversation.propertyChange", "conversation.newMessage", *_crud("object", _HUBSPOT_VERBS, ".")),
        False, (), "each event's subscriptionType (workflow webhooks have none)"),
    "bamboohr": SenderEvents(("employee.created", "employee.updated", "employee.deleted"), True, (),
                             "the body's type, or each legacy employees[].action"),
    "github": SenderEvents((
        "branch_protection_rule", "check_run", "check_suite", "code_scanning_alert", "commit_comment", "create",
        "custom_property", "custom_property_values", "delete", "dependabot_alert", "deploy_key", "deployment",
        "deployment_protection_rule", "deployment_review", "deployment_status", "discussion", "discussion_comment",
        "fork", "github_app_authorization", "gollum", "installation", "installation_repositories",
        "installation_target", "issue_comment", "issues", "label", "marketplace_purchase", "member", "membership",
        "merge_group", "meta", "milestone", "org_block", "organization", "package", "page_build", "ping",
        "project", "project_card", "project_column", "projects_v2", "projects_v2_item", "public", "pull_request",
        "pull_request_review", "pull_request_review_comment", "pull_request_review_thread", "push", "registry_package",
        "release", "repository", "repository_advisory", "repository_dispatch", "repository_import",
        "repository_ruleset", "repository_vulnerability_alert", "secret_scanning_alert", "secret_scanning_alert_location",
        "security_advisory", "security_and_analysis", "sponsorship", "star", "status", "sub_issues", "team", "team_add",
        "watch", "workflow_dispatch", "workflow_job", "workflow_run"), False, (), "the X-GitHub-Event header"),
    "typeform": SenderEvents(("form_response", "form_response_partial"), True, (), "the body's event_type"),
    "thrivecart": SenderEvents((
        "order.success", "order.refund", "order.subscription_payment", "order.subscription_cancelled",
        "order.subscription_paused", "order.subscription_resumed", "order.rebill_failed", "order.payment_plan_completed",
        "affiliate.commission_earned", "affiliate.commission_payout", "affiliate.commission_refund"), False, (),
        "the body's event"),
    "gumroad": SenderEvents(("sale", "refund", "dispute", "dispute_won", "cancellation", "subscription_updated",
                             "subscription_ended", "subscription_restarted"), True, (),
                            "the body's resource_name (a classic Ping is a sale)"),
}

# A name this close to a known one is a typo, whatever else the sender may send.
TYPO_RATIO = 0.85


@lru_cache(maxsize=4096)  # a rule set repeats its event names; difflib is slow
def event_problem(source_type: str, name: str) -> tuple[str, str, str] | None:
    """Say (severity, message, fix) when a sender of this type does not produce an event name; None when it may."""
    events = EVENTS.get(source_type)
    if events is None or name in events.names or name.startswith(events.prefixes):
        return None
    close = difflib.get_close_matches(name, events.names, n=1, cutoff=TYPO_RATIO)
    if close:
        return "error", f"{source_type} never sends event {name!r}", f"write event: {close[0]}"
    if events.complete:
        return ("warning", f"{source_type} sends no event {name!r} (it names events in {events.where}: "
                f"{', '.join(events.names)})", "use one of those names")
    return ("warning", f"{name!r} is not an event name the bridge knows {source_type} to send "
            f"(read from {events.where})", "check the spelling against the sender's documentation")
