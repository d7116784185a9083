//! `api/order/info` and `api/order/history` on Keyward's orders.
//!
//! The order is shaped like OpenCart 3.x's `getOrder()` answer: flat fields whose values are
//! strings, as PHP reads them from MySQL (`"order_id": "7"`, `"total": "105.0000"`), dates as
//! `YYYY-MM-DD HH:MM:SS` (UTC here), plus the order's `products` and `histories`. Fields Keyward
//! has no data for (addresses, payment and shipping methods, affiliates) are left out.

use super::fields::Fields;
use super::reply::{self, TEXT_ORDERS};
use crate::auth::Caller;
use crate::domain::catalog::{
    Customer, Order, OrderHistory, OrderHistoryInput, OrderLine, StatusRef,
};
use crate::domain::history::Outcome;
use crate::domain::ids::{OrderId, OrderStatusId};
use crate::domain::money::Money;
use crate::domain::scope::Scope;
use crate::domain::validation::FieldError;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::v1::orders::change_status;
use axum::response::Response;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;

/// `route=api/order/info&order_id=N`: the order, with `orders:read`. The customer's name, email
/// and telephone only with `customers:read` as well, as `/api/v1` shows them: without it they
/// are empty, and the order names its customer by `customer_id` alone.
pub async fn info(
    state: &AppState,
    fields: &Fields,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let id = order_id(fields)?;
    let order = state.db.order(id).await?.ok_or_else(not_found)?;
    let customer = if caller.user.scopes.allows(Scope::CustomersRead) {
        state.db.customer(order.customer_id).await?
    } else {
        None
    };
    Ok(reply::success(json!({
        "order": OpenCartOrder::new(&order, customer.as_ref()),
        "success": TEXT_ORDERS,
    })))
}

/// `route=api/order/history&order_id=N` with `order_status_id`, `comment`, `notify` in the body:
/// a status update through the same service as `POST /api/v1/orders/{id}/history`, with
/// `orders:write`. OpenCart's `override` (skip the fraud check) means nothing here.
pub async fn history(state: &AppState, fields: &Fields) -> Result<Response, ApiError> {
    let id = order_id(fields)?;
    // A change travels in the body, as OpenCart reads it: never in a link, which a GET (a
    // crawler, a preview) would follow, and never half of it.
    let in_url: Vec<FieldError> = CHANGE_FIELDS
        .into_iter()
        .filter(|name| fields.get(name).is_some())
        .map(|name| FieldError {
            field: name.to_owned(),
            message: "Send it in the POST body, not in the URL!".to_owned(),
        })
        .collect();
    if !in_url.is_empty() {
        return Err(ApiError::invalid(in_url));
    }
    let (status, notify) = match (status_of(fields), notify_of(fields)) {
        (Ok(status), Ok(notify)) => (status, notify),
        (status, notify) => {
            let details = [
                status.err().map(|m| ("order_status_id", m)),
                notify.err().map(|m| ("notify", m)),
            ]
            .into_iter()
            .flatten()
            .map(|(field, message)| FieldError {
                field: field.to_owned(),
                message: message.to_owned(),
            })
            .collect();
            return Err(ApiError::invalid(details));
        }
    };
    let comment = fields.post("comment").unwrap_or("").to_owned();
    let input = OrderHistoryInput {
        status: StatusRef::Id(status),
        comment: Some(comment),
        notify,
    };
    change_status(state, id, input)
        .await
        .map_err(|error| opencart_words(error, status))?;
    Ok(reply::success(json!({ "success": TEXT_ORDERS })))
}

/// The fields of a status update, which OpenCart reads from the body only.
const CHANGE_FIELDS: [&str; 3] = ["order_status_id", "comment", "notify"];

/// `order_id` as OpenCart reads it (from the query string; the body is read too). Anything
/// that is no order id finds no order, as with OpenCart's `(int)` cast.
fn order_id(fields: &Fields) -> Result<OrderId, ApiError> {
    fields
        .get_or_post("order_id")
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|id| *id > 0)
        .map(OrderId)
        .ok_or_else(not_found)
}

fn not_found() -> ApiError {
    ApiError::not_found("order")
}

fn status_of(fields: &Fields) -> Result<OrderStatusId, &'static str> {
    match fields.post("order_status_id").map(str::trim) {
        // OpenCart would store status 0, which hides the order; refuse instead.
        None | Some("") => Err("Order status required!"),
        Some(text) => text
            .parse()
            .map(OrderStatusId)
            .map_err(|_| "Order status must be a number, such as 3 for Shipped!"),
    }
}

fn notify_of(fields: &Fields) -> Result<bool, &'static str> {
    fields
        .post("notify")
        .map_or(Some(false), |text| flag(text.trim()))
        .ok_or("Notify must be 1 or 0!")
}

/// A form's boolean, as PHP clients send one.
fn flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "" | "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// The service's field names and words in the names an OpenCart client sent.
fn opencart_words(error: ApiError, status: OrderStatusId) -> ApiError {
    if error.outcome() != Outcome::Invalid {
        return error;
    }
    let details = error
        .details()
        .iter()
        .map(|d| match d.field.as_str() {
            "status" => FieldError {
                field: "order_status_id".to_owned(),
                message: format!(
                    "Order status {status} does not exist; GET /api/v1/order-statuses lists them!"
                ),
            },
            "comment" => FieldError {
                field: "comment".to_owned(),
                message: format!("Comment {}!", d.message),
            },
            _ => d.clone(),
        })
        .collect();
    ApiError::invalid(details)
}

#[derive(Serialize)]
struct OpenCartOrder {
    order_id: String,
    invoice_no: &'static str,
    store_id: &'static str,
    customer_id: String,
    customer: String,
    firstname: String,
    lastname: String,
    email: String,
    telephone: String,
    comment: String,
    total: String,
    order_status_id: String,
    order_status: String,
    currency_code: String,
    currency_value: &'static str,
    date_added: String,
    date_modified: String,
    products: Vec<OpenCartProduct>,
    histories: Vec<OpenCartHistory>,
}

#[derive(Serialize)]
struct OpenCartProduct {
    product_id: String,
    name: String,
    /// OpenCart's product code; Keyward's SKU.
    model: String,
    sku: String,
    quantity: String,
    price: String,
    total: String,
    tax: &'static str,
}

#[derive(Serialize)]
struct OpenCartHistory {
    order_status_id: String,
    status: String,
    comment: String,
    notify: &'static str,
    date_added: String,
}

impl OpenCartOrder {
    fn new(order: &Order, customer: Option<&Customer>) -> Self {
        let name = customer.map_or("", |c| c.name.as_str());
        let (firstname, lastname) = name.trim().split_once(' ').unwrap_or((name.trim(), ""));
        Self {
            order_id: order.id.to_string(),
            invoice_no: "0",
            store_id: "0",
            customer_id: order.customer_id.to_string(),
            customer: name.to_owned(),
            firstname: firstname.to_owned(),
            lastname: lastname.trim().to_owned(),
            email: customer.map(|c| c.email.clone()).unwrap_or_default(),
            telephone: customer.and_then(|c| c.phone.clone()).unwrap_or_default(),
            comment: order.comment.clone(),
            total: decimal(order.total),
            order_status_id: order.order_status_id.to_string(),
            order_status: order.status.clone(),
            currency_code: order.currency.clone(),
            currency_value: "1.00000000",
            date_added: datetime(order.created_at),
            date_modified: datetime(order.updated_at),
            products: order.lines.iter().map(OpenCartProduct::new).collect(),
            histories: order
                .history
                .iter()
                .flatten()
                .map(OpenCartHistory::new)
                .collect(),
        }
    }
}

impl OpenCartProduct {
    fn new(line: &OrderLine) -> Self {
        Self {
            product_id: line.product_id.to_string(),
            name: line.name.clone(),
            model: line.sku.clone(),
            sku: line.sku.clone(),
            quantity: line.quantity.to_string(),
            price: decimal(line.price),
            total: decimal(line.total),
            tax: "0.0000",
        }
    }
}

impl OpenCartHistory {
    fn new(entry: &OrderHistory) -> Self {
        Self {
            order_status_id: entry.order_status_id.to_string(),
            status: entry.status.clone(),
            comment: entry.comment.clone(),
            notify: if entry.notify { "1" } else { "0" },
            date_added: datetime(entry.date_added),
        }
    }
}

/// Money as MySQL's `DECIMAL(15,4)` prints it: `"19.9900"`.
fn decimal(money: Money) -> String {
    let cents = money.cents();
    format!("{}.{:02}00", cents / 100, cents % 100)
}

/// A time as MySQL's `DATETIME` prints it.
fn datetime(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn money_and_dates_print_as_mysql_prints_them() {
        assert_eq!(
            decimal(Money::from_cents(10_550).expect("money")),
            "105.5000"
        );
        assert_eq!(decimal(Money::ZERO), "0.0000");
        assert_eq!(
            datetime(datetime!(2026-03-04 05:06:07 UTC)),
            "2026-03-04 05:06:07"
        );
        assert_eq!(
            datetime(datetime!(2026-03-04 01:00:00 +02:00)),
            "2026-03-03 23:00:00"
        );
    }

    #[test]
    fn php_booleans_are_read_and_nonsense_is_not() {
        for yes in ["1", "true", "on", "YES"] {
            assert_eq!(flag(yes), Some(true), "{yes}");
        }
        for no in ["", "0", "false", "off", "no"] {
            assert_eq!(flag(no), Some(false), "{no}");
        }
        assert_eq!(flag("maybe"), None);
    }
}
