//! Permissions of an API user. `write` implies `read` of the same resource; nothing is
//! granted by default.

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    ProductsRead,
    ProductsWrite,
    OrdersRead,
    OrdersWrite,
    CustomersRead,
    CustomersWrite,
    ApiUsersRead,
    ApiUsersWrite,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a scope; scopes are {list}", list = Scope::ALL.map(|s| s.as_str()).join(", "))]
pub struct ScopeError(pub String);

impl Scope {
    pub const ALL: [Scope; 8] = [
        Self::ProductsRead,
        Self::ProductsWrite,
        Self::OrdersRead,
        Self::OrdersWrite,
        Self::CustomersRead,
        Self::CustomersWrite,
        Self::ApiUsersRead,
        Self::ApiUsersWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProductsRead => "products:read",
            Self::ProductsWrite => "products:write",
            Self::OrdersRead => "orders:read",
            Self::OrdersWrite => "orders:write",
            Self::CustomersRead => "customers:read",
            Self::CustomersWrite => "customers:write",
            Self::ApiUsersRead => "api_users:read",
            Self::ApiUsersWrite => "api_users:write",
        }
    }

    /// The scope this one implies (`write` → `read`).
    fn implied_read(self) -> Option<Scope> {
        match self {
            Self::ProductsWrite => Some(Self::ProductsRead),
            Self::OrdersWrite => Some(Self::OrdersRead),
            Self::CustomersWrite => Some(Self::CustomersRead),
            Self::ApiUsersWrite => Some(Self::ApiUsersRead),
            _ => None,
        }
    }

    /// Scopes only management keys may hold.
    pub fn is_management(self) -> bool {
        matches!(self, Self::ApiUsersRead | Self::ApiUsersWrite)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeError(s.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A set of scopes, as granted to one API user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u16);

impl Scopes {
    pub fn empty() -> Self {
        Self(0)
    }

    /// Parses a list (space or comma separated in one string, or several strings).
    pub fn parse<I, S>(items: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::empty();
        for item in items {
            for word in item.as_ref().split([' ', ',']).filter(|w| !w.is_empty()) {
                set.insert(word.parse()?);
            }
        }
        Ok(set)
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether a caller holding these scopes may do what `needed` guards.
    pub fn allows(&self, needed: Scope) -> bool {
        self.contains(needed)
            || Scope::ALL
                .iter()
                .any(|held| self.contains(*held) && held.implied_read() == Some(needed))
    }

    /// The first of `wanted` that these scopes do not allow, if any: what a caller holding
    /// these would need to grant `wanted`.
    pub fn first_missing(&self, wanted: &Scopes) -> Option<Scope> {
        wanted.iter().find(|scope| !self.allows(*scope))
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        Scope::ALL.into_iter().filter(|s| self.contains(*s))
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn has_management(&self) -> bool {
        self.iter().any(Scope::is_management)
    }

    /// The form kept in the database: names separated by spaces.
    pub fn to_db(&self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_db())
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_implies_read_of_the_same_resource_only() {
        let scopes = Scopes::parse(["products:write"]).expect("valid");
        assert!(scopes.allows(Scope::ProductsRead));
        assert!(scopes.allows(Scope::ProductsWrite));
        assert!(!scopes.allows(Scope::OrdersRead));
        let read = Scopes::parse(["orders:read"]).expect("valid");
        assert!(!read.allows(Scope::OrdersWrite));
    }

    #[test]
    fn what_a_holder_lacks_to_grant_others_is_named() {
        let held = Scopes::parse(["products:write orders:read"]).expect("valid");
        let within = Scopes::parse(["products:read products:write orders:read"]).expect("valid");
        assert_eq!(held.first_missing(&within), None);
        let beyond = Scopes::parse(["products:read orders:write"]).expect("valid");
        assert_eq!(held.first_missing(&beyond), Some(Scope::OrdersWrite));
        assert_eq!(held.first_missing(&Scopes::empty()), None);
    }

    #[test]
    fn nothing_is_granted_by_default() {
        assert!(Scope::ALL.iter().all(|s| !Scopes::empty().allows(*s)));
    }

    #[test]
    fn parses_space_and_comma_separated_lists_and_round_trips() {
        let scopes =
            Scopes::parse(["orders:read, products:write", "customers:read"]).expect("valid");
        assert_eq!(scopes.to_db(), "products:write orders:read customers:read");
        assert_eq!(Scopes::parse([scopes.to_db()]), Ok(scopes));
    }

    #[test]
    fn unknown_scopes_are_named_in_the_error() {
        let err = Scopes::parse(["products:delete"]).expect_err("invalid");
        assert!(err.to_string().contains("products:delete"));
        assert!(err.to_string().contains("orders:write"));
    }
}
