//! Serde adapters for config values written as text (`"quorum"`, `"krum:1"`, a fingerprint,
//! `FINGERPRINT@IP:PORT`): read with the type's `FromStr`, written with its `Display`. A
//! config therefore holds typed values from the moment it loads, and the type's own parser is
//! the one rule for what a value may be (names are matched ASCII case-blind, as every
//! `FromStr` here does).
//!
//! Owns the text round trip only; must not name keys (the loader adds the key path to every
//! error) nor check one key against another (`NodeConfig::validate` does).

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serializer};

fn parse<T, E>(text: &str) -> Result<T, E>
where
    T: FromStr,
    T::Err: Display,
    E: serde::de::Error,
{
    text.parse().map_err(E::custom)
}

/// One value: `#[serde(with = "text_values::one")]`.
pub(crate) mod one {
    use super::*;

    pub(crate) fn serialize<T: Display, S: Serializer>(
        value: &T,
        out: S,
    ) -> Result<S::Ok, S::Error> {
        out.collect_str(value)
    }

    pub(crate) fn deserialize<'de, T, D>(input: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        parse(&String::deserialize(input)?)
    }
}

/// A list of values: `#[serde(with = "text_values::list")]`.
pub(crate) mod list {
    use super::*;

    pub(crate) fn serialize<T: Display, S: Serializer>(
        values: &[T],
        out: S,
    ) -> Result<S::Ok, S::Error> {
        out.collect_seq(values.iter().map(ToString::to_string))
    }

    pub(crate) fn deserialize<'de, T, D>(input: D) -> Result<Vec<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        Vec::<Entry<T>>::deserialize(input)
            .map(|entries| entries.into_iter().map(|e| e.0).collect())
    }

    /// One list entry, parsed as it is read so an error carries the entry's index.
    struct Entry<T>(T);

    impl<'de, T> Deserialize<'de> for Entry<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        fn deserialize<D: Deserializer<'de>>(input: D) -> Result<Entry<T>, D::Error> {
            parse(&String::deserialize(input)?).map(Entry)
        }
    }
}

/// A value that may be absent: `#[serde(with = "text_values::optional")]`.
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        out: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => out.serialize_some(&value.to_string()),
            None => out.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, T, D>(input: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        match Option::<String>::deserialize(input)? {
            Some(text) => parse::<T, D::Error>(&text).map(Some),
            None => Ok(None),
        }
    }
}
