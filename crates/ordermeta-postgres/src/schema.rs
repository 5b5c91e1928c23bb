//! The store's schema name: validated as a plain identifier, always used quoted.

use crate::error::PgError;

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENTIFIER_LEN: usize = 63;

/// A validated schema name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Schema {
    name: String,
    quoted: String,
}

impl Schema {
    /// Accepts `[A-Za-z_][A-Za-z0-9_]{0,62}`, not starting with `pg_` (reserved by PostgreSQL).
    ///
    /// Quoting alone would make any text safe to splice into SQL; the stricter rule keeps the
    /// name usable unquoted in `psql` and in GRANT statements an operator types by hand.
    pub(crate) fn new(name: &str) -> Result<Self, PgError> {
        let bad = |reason| {
            Err(PgError::InvalidSchemaName {
                name: name.to_owned(),
                reason,
            })
        };
        let mut chars = name.chars();
        match chars.next() {
            None => return bad("it is empty"),
            Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
                return bad("it must start with an ASCII letter or an underscore");
            }
            Some(_) => {}
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return bad("only ASCII letters, digits and underscores are allowed");
        }
        if name.len() > MAX_IDENTIFIER_LEN {
            return bad("PostgreSQL identifiers are at most 63 bytes");
        }
        if name.to_ascii_lowercase().starts_with("pg_") {
            return bad("names starting with pg_ are reserved for PostgreSQL");
        }
        Ok(Schema {
            name: name.to_owned(),
            // Validated above: no quote can occur inside, so wrapping is enough.
            quoted: format!("\"{name}\""),
        })
    }

    /// The name as given.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The name double-quoted, for SQL text.
    pub(crate) fn quoted(&self) -> &str {
        &self.quoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_identifiers_and_quotes_them() {
        for ok in ["ordermeta", "_x", "Bots_2024", &"a".repeat(63)] {
            let s = Schema::new(ok).expect(ok);
            assert_eq!(s.quoted(), format!("\"{ok}\""));
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "x;drop",
            "ordermetä",
            "pg_temp",
            "PG_x",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(Schema::new(bad), Err(PgError::InvalidSchemaName { .. })),
                "{bad:?}"
            );
        }
    }
}
