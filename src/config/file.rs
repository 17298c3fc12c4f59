//! The file's shape: one serde struct per section (each beside its
//! validator), gathered here. `deny_unknown_fields` on each section is what
//! reports a misspelt key, with its line.

use serde::Deserialize;

use super::LoadError;
use super::channels::RawChannel;
use super::dispatch::RawDispatch;
use super::flows::RawFlows;
use super::limits::RawLimits;
use super::outbox::RawOutbox;
use super::privacy::RawPrivacy;
use super::server::RawServer;
use super::store::RawStore;
use crate::problem::Problem;

/// The whole file as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub privacy: RawPrivacy,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub outbox: RawOutbox,
    pub flows: Option<RawFlows>,
    pub dispatch: Option<RawDispatch>,
    #[serde(default)]
    pub channels: Vec<RawChannel>,
}

/// Read the TOML; a syntax error, an unknown key or a mistyped value is one
/// problem naming the line.
pub(super) fn read(text: &str, file: &str) -> Result<RawConfig, LoadError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| {
                format!(
                    "line {}",
                    text[..s.start.min(text.len())].matches('\n').count() + 1
                )
            })
            .unwrap_or_default();
        LoadError::Invalid(vec![Problem::error(file, line, e.message().to_owned())])
    })
}

/// Every key the file accepts, by section (`channels`: the keys every
/// channel has; each kind's own keys are its adapter's), read from the
/// serde structs themselves so the list cannot drift from the validator.
#[cfg(test)]
pub(super) fn accepted_keys() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("server", fields::<RawServer>().to_vec()),
        ("store", fields::<RawStore>().to_vec()),
        ("privacy", fields::<RawPrivacy>().to_vec()),
        ("limits", fields::<RawLimits>().to_vec()),
        ("outbox", fields::<RawOutbox>().to_vec()),
        ("flows", fields::<RawFlows>().to_vec()),
        ("dispatch", fields::<RawDispatch>().to_vec()),
        ("channels", super::channels::common_keys()),
    ]
}

/// The sections of the file, in the order the struct declares them.
#[cfg(test)]
pub(super) fn sections() -> &'static [&'static str] {
    fields::<RawConfig>()
}

/// The field names a derived `Deserialize` struct declares. Serde hands them
/// to `deserialize_struct`; this deserializer records them and stops.
#[cfg(test)]
fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor, value::Error};

    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}
