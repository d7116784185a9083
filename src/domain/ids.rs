//! Typed ids, so an order id can never be passed where a product id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = i64)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// An API user (OpenCart's `api_id`).
    ApiUserId,
    /// One key of an API user.
    ApiKeyId,
    /// A login session.
    SessionId,
    ProductId,
    CustomerId,
    OrderId,
    /// An order status; the numbers are OpenCart's, so OpenCart clients keep working.
    OrderStatusId,
    AdminUserId,
    /// A webhook endpoint.
    WebhookId,
    /// One event on its way to one endpoint.
    DeliveryId,
);
