//! `serve --demo`: a small believable store and a demo API user, so the README's cURL lines
//! work on a fresh machine.

use crate::credentials::{
    CreateApiUser, Credentials, IssuedKey, KeySource, NewExpiry, ServiceError,
};
use crate::domain::admin::Actor;
use crate::domain::api_user::Environment;
use crate::domain::catalog::{
    CustomerInput, NewOrder, NewOrderHistory, NewProduct, PageRequest, ProductFilter, ProductRef,
    ProductStatus, StatusRef,
};
use crate::domain::ids::{CustomerId, OrderId};
use crate::domain::money::Money;
use crate::store::{Db, StoreError};
use time::{Duration, OffsetDateTime};

pub const DEMO_USER: &str = "demo";

const PRODUCTS: &[(&str, &str, i64, i64)] = &[
    (
        "TSHIRT-BLK-M",
        "Organic cotton T-shirt, black, M",
        1999,
        120,
    ),
    ("TSHIRT-BLK-L", "Organic cotton T-shirt, black, L", 1999, 95),
    ("TSHIRT-WHT-M", "Organic cotton T-shirt, white, M", 1999, 80),
    ("TSHIRT-WHT-L", "Organic cotton T-shirt, white, L", 1999, 3),
    ("HOODIE-GRY-M", "Heavyweight hoodie, grey, M", 5900, 40),
    ("HOODIE-GRY-L", "Heavyweight hoodie, grey, L", 5900, 35),
    ("HOODIE-NVY-M", "Heavyweight hoodie, navy, M", 5900, 0),
    ("CAP-CANVAS", "Canvas cap", 2400, 60),
    ("BEANIE-WOOL", "Merino beanie", 2900, 44),
    ("SOCKS-3PK", "Everyday socks, 3 pack", 1500, 200),
    ("TOTE-NAT", "Natural canvas tote bag", 1800, 150),
    ("MUG-ENAMEL", "Enamel camping mug", 1600, 75),
    ("BOTTLE-750", "Insulated bottle, 750 ml", 3400, 52),
    ("NOTEBOOK-A5", "Dot-grid notebook, A5", 1200, 300),
    ("PEN-BRASS", "Brass pen", 4500, 25),
    ("PENCIL-6PK", "Graphite pencils, 6 pack", 800, 180),
    ("STICKER-SET", "Vinyl sticker set", 600, 500),
    ("POSTER-A2", "Screen-printed poster, A2", 2500, 30),
    ("CANDLE-CEDAR", "Soy candle, cedar", 2200, 48),
    ("CANDLE-FIG", "Soy candle, fig", 2200, 2),
    ("SOAP-OAT", "Oat soap bar", 700, 140),
    ("TOWEL-LINEN", "Linen tea towel", 1400, 90),
    ("APRON-DENIM", "Denim apron", 3900, 20),
    ("BLANKET-WOOL", "Wool throw blanket", 12900, 12),
    ("CUSHION-OCHRE", "Linen cushion cover, ochre", 2900, 33),
    ("PLANTER-S", "Terracotta planter, small", 1900, 64),
    ("PLANTER-L", "Terracotta planter, large", 3900, 18),
    ("LAMP-DESK", "Steel desk lamp", 8900, 9),
    ("CLOCK-WALL", "Wall clock, birch", 4900, 14),
    ("GLASSES-4PK", "Tumbler glasses, 4 pack", 2800, 40),
    ("BOWL-CERAMIC", "Ceramic bowl", 1700, 70),
    ("PLATE-CERAMIC", "Ceramic plate", 1900, 65),
    ("KNIFE-CHEF", "Chef's knife, 20 cm", 7900, 11),
    ("BOARD-OAK", "Oak cutting board", 4200, 22),
    ("GRINDER-PEPPER", "Pepper grinder", 3200, 27),
    ("KETTLE-STOVE", "Stovetop kettle", 6500, 8),
    ("COFFEE-1KG", "Espresso beans, 1 kg", 2900, 100),
    ("TEA-SENCHA", "Sencha green tea, 100 g", 1300, 85),
    ("CHOC-DARK", "Dark chocolate, 85%", 450, 400),
    ("GIFTCARD-50", "Gift card, 50.00", 5000, 1000),
];

const CUSTOMERS: &[(&str, &str, Option<&str>)] = &[
    ("Ada Lovelace", "ada@example.com", Some("+44 20 7946 0001")),
    ("Alan Turing", "alan@example.com", None),
    ("Grace Hopper", "grace@example.com", Some("+1 202 555 0143")),
    ("Katherine Johnson", "katherine@example.com", None),
    (
        "Edsger Dijkstra",
        "edsger@example.nl",
        Some("+31 20 555 0199"),
    ),
    ("Barbara Liskov", "barbara@example.com", None),
    ("Donald Knuth", "don@example.com", None),
    (
        "Margaret Hamilton",
        "margaret@example.com",
        Some("+1 617 555 0100"),
    ),
    ("Linus Torvalds", "linus@example.fi", None),
    ("Radia Perlman", "radia@example.com", None),
    ("Ken Thompson", "ken@example.com", None),
    (
        "Frances Allen",
        "frances@example.com",
        Some("+1 914 555 0181"),
    ),
    ("Tim Berners-Lee", "tim@example.org", None),
    ("Hedy Lamarr", "hedy@example.at", None),
    ("Sophie Wilson", "sophie@example.co.uk", None),
];

/// Status moves of the demo orders, by order index: the order ends in the last status.
const ORDER_PATHS: &[&[&str]] = &[
    &[],
    &["Processing"],
    &["Processing", "Shipped"],
    &["Processing", "Shipped", "Complete"],
    &["Canceled"],
    &["Processing", "Shipped", "Complete", "Refunded"],
];

/// Fills an empty store with products, customers and orders. Returns false when the store
/// already had products (a second `--demo` start leaves it alone).
pub async fn seed_store(db: &Db, now: OffsetDateTime) -> Result<bool, StoreError> {
    let existing = db
        .products(
            &ProductFilter::default(),
            PageRequest {
                after: None,
                limit: 1,
            },
        )
        .await?;
    if !existing.is_empty() {
        return Ok(false);
    }
    for (i, (sku, name, cents, quantity)) in PRODUCTS.iter().enumerate() {
        let product = NewProduct {
            sku: (*sku).to_owned(),
            name: (*name).to_owned(),
            description: String::new(),
            price: Money::from_cents(*cents).map_err(|e| StoreError::Config(e.to_string()))?,
            quantity: *quantity,
            status: if i == 6 {
                ProductStatus::Disabled
            } else {
                ProductStatus::Enabled
            },
        };
        db.create_product(
            &product,
            now - Duration::days(30) + Duration::hours(i as i64),
        )
        .await?;
    }
    let mut customers = Vec::new();
    for (i, (name, email, phone)) in CUSTOMERS.iter().enumerate() {
        let input = CustomerInput {
            name: (*name).to_owned(),
            email: (*email).to_owned(),
            phone: phone.map(str::to_owned),
        };
        customers.push(
            db.create_customer(&input, now - Duration::days(20) + Duration::hours(i as i64))
                .await?
                .id,
        );
    }
    // Orders take products with stock to spare, so every one of them can be placed.
    let orderable: Vec<&str> = PRODUCTS.iter().filter(|p| p.3 >= 10).map(|p| p.0).collect();
    // Placed and moved along in the order of their dates, as a store would have: the store
    // stamps `updated_at` so that it never goes back (see `begin_stamped`).
    let placed = |i: usize| now - Duration::days(12) + Duration::hours(i as i64 * 9);
    let paths = |i: usize| ORDER_PATHS[i % ORDER_PATHS.len()];
    let mut events: Vec<(OffsetDateTime, usize, Option<usize>)> = (0..25usize)
        .flat_map(|i| {
            let steps = (0..paths(i).len()).map(move |step| {
                (
                    placed(i) + Duration::hours(step as i64 * 20 + 4),
                    i,
                    Some(step),
                )
            });
            std::iter::once((placed(i), i, None)).chain(steps)
        })
        .collect();
    events.sort_by_key(|&(at, i, step)| (at, i, step.map_or(0, |s| s + 1)));
    let mut created: Vec<Option<OrderId>> = vec![None; 25];
    for (at, i, step) in events {
        match step {
            None => {
                let customer = customers[i % customers.len()];
                let lines = (0..1 + i % 3)
                    .map(|j| {
                        let sku = orderable[(i * 7 + j * 3) % orderable.len()];
                        (ProductRef::Sku(sku.to_owned()), 1 + (i + j) as i64 % 2)
                    })
                    .collect::<Vec<_>>();
                let order = NewOrder {
                    customer_id: CustomerId(customer.0),
                    currency: "USD".to_owned(),
                    lines,
                    comment: String::new(),
                };
                match db.create_order(&order, at).await {
                    Ok(order) => created[i] = Some(OrderId(order.id.0)),
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Some(step) => {
                let Some(id) = created[i] else { continue };
                let status = paths(i)[step];
                let entry = NewOrderHistory {
                    status: StatusRef::Name(status.to_owned()),
                    comment: if status == "Shipped" {
                        format!("Tracking number 1Z{:08}", 4_700_000 + i)
                    } else {
                        String::new()
                    },
                    notify: status == "Shipped",
                };
                db.add_order_history(id, &entry, at).await?;
            }
        }
    }
    Ok(true)
}

/// How long the key of the previous `--demo` start keeps working beside the new one.
pub const DEMO_KEY_GRACE: Duration = Duration::days(7);

/// The key a `--demo` start prints.
#[derive(Debug)]
pub struct DemoKey {
    pub issued: IssuedKey,
    /// Whether the demo user existed, its previous key now in its grace period.
    pub rolled: bool,
}

/// The demo API user's key: made with the user, or, when the user exists, a new one — its key
/// is shown once, so every `--demo` start prints a key that works. The key the previous start
/// printed keeps working for [`DEMO_KEY_GRACE`] (a client set up with it goes on), and any
/// older one stops: at most two keys live.
pub async fn demo_user(credentials: &Credentials) -> Result<DemoKey, ServiceError> {
    let actor = Actor::full("demo".to_owned());
    match credentials.get(DEMO_USER).await {
        Ok(_) => {
            let issued = credentials
                .rotate(
                    &actor,
                    DEMO_USER,
                    DEMO_KEY_GRACE,
                    KeySource::default(),
                    NewExpiry::AsBefore,
                )
                .await?;
            Ok(DemoKey {
                issued,
                rolled: true,
            })
        }
        Err(ServiceError::NoSuchUser(_)) => {
            let request = CreateApiUser {
                username: DEMO_USER.to_owned(),
                description: "Demo integration, made by `serve --demo`".to_owned(),
                environment: Environment::Development,
                scopes: ["products:write", "orders:write", "customers:write"]
                    .map(str::to_owned)
                    .to_vec(),
                ips: ["127.0.0.1", "::1"].map(str::to_owned).to_vec(),
                ..CreateApiUser::default()
            };
            let issued = credentials.create(&actor, request).await?;
            Ok(DemoKey {
                issued,
                rolled: false,
            })
        }
        Err(e) => Err(e),
    }
}
