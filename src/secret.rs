//! Secrets travel in a type that cannot be printed: `Debug` and `Display` show `***`, and
//! `Serialize` writes `"***"`, so redaction is structural rather than remembered at each log line.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value, for the one place that must use it (a digest, a signature, a wire field).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// For clap: a secret given as an argument parses into `Secret` at once, so the parsed command
/// line (whose `Debug` may be logged) never holds it as a printable string.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(String::deserialize(d)?))
    }
}

/// AMT's rule for the admin and MEBx passwords: 8–32 characters with a lower-case and an
/// upper-case letter, a digit and a special character, none of `"` `,` `:`.
pub fn meets_amt_rules(s: &str) -> bool {
    (8..=32).contains(&s.chars().count())
        && s.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| !c.is_ascii_alphanumeric())
        && !s.contains(['"', ',', ':'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("P@ssw0rd!");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "P@ssw0rd!");
    }
}
