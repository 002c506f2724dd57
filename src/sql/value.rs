//! Values bound into statements and values read out of rows, as D1 maps them.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::ToSql;
use serde_json::Value as Json;

use crate::error::{Error, Result};

/// A value bound to a `?` parameter. D1 binds JavaScript values the same way: `null`,
/// numbers (integers stay integers), strings, booleans as `1`/`0`, and byte arrays as BLOBs.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// SQL `NULL`.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Param {
    /// Converts a JSON value as D1 does: `true`/`false` become `1`/`0`, integral numbers
    /// that fit in `i64` stay integers, other numbers are doubles. Arrays of byte values
    /// (0..=255) become BLOBs, as an `ArrayBuffer` would; objects are refused.
    pub fn from_json(value: &Json) -> Result<Param> {
        Ok(match value {
            Json::Null => Param::Null,
            Json::Bool(b) => Param::Integer(i64::from(*b)),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Param::Integer(i),
                None => Param::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Param::Text(s.clone()),
            Json::Array(items) => {
                let bytes: Option<Vec<u8>> = items
                    .iter()
                    .map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                Param::Blob(bytes.ok_or_else(|| {
                    Error::invalid(
                        "bound value",
                        "an array binds as a BLOB only when it holds byte values 0..=255",
                    )
                })?)
            }
            Json::Object(_) => {
                return Err(Error::invalid(
                    "bound value",
                    "objects cannot be bound; pass JSON.stringify-ed text instead",
                ))
            }
        })
    }
}

macro_rules! param_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Param {
            fn from(v: $t) -> Self { Param::Integer(i64::from(v)) }
        }
    )*};
}
param_from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Integer(i64::from(v))
    }
}
impl From<f64> for Param {
    fn from(v: f64) -> Self {
        Param::Real(v)
    }
}
impl From<f32> for Param {
    fn from(v: f32) -> Self {
        Param::Real(f64::from(v))
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_owned())
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}
impl From<&String> for Param {
    fn from(v: &String) -> Self {
        Param::Text(v.clone())
    }
}
impl From<Vec<u8>> for Param {
    fn from(v: Vec<u8>) -> Self {
        Param::Blob(v)
    }
}
impl From<&[u8]> for Param {
    fn from(v: &[u8]) -> Self {
        Param::Blob(v.to_vec())
    }
}
impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Param::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Builds a `Vec<Param>` from a list of values: `params![tenant, 42, None::<i64>]`.
#[macro_export]
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::Param>::new() };
    ($($v:expr),+ $(,)?) => { vec![$($crate::Param::from($v)),+] };
}

/// Converts a column value to JSON as D1 returns it: integers and reals as numbers, text
/// as strings, BLOBs as arrays of byte values, `NULL` as `null`. Non-finite reals become
/// `null`, since JSON has no representation for them.
pub fn column_to_json(value: ValueRef<'_>) -> Json {
    match value {
        ValueRef::Null => Json::Null,
        ValueRef::Integer(i) => Json::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        ValueRef::Text(t) => Json::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Json::Array(b.iter().map(|&x| Json::from(x)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_params_follow_d1_binding_rules() {
        assert_eq!(Param::from_json(&json!(true)).unwrap(), Param::Integer(1));
        assert_eq!(Param::from_json(&json!(7)).unwrap(), Param::Integer(7));
        assert_eq!(Param::from_json(&json!(1.5)).unwrap(), Param::Real(1.5));
        assert_eq!(
            Param::from_json(&json!([1, 255])).unwrap(),
            Param::Blob(vec![1, 255])
        );
        assert!(Param::from_json(&json!([256])).is_err());
        assert!(Param::from_json(&json!({"a": 1})).is_err());
    }

    #[test]
    fn params_macro_converts_each_value() {
        let p = params!["a", 2_i64, None::<i64>, true];
        assert_eq!(
            p,
            vec![
                Param::Text("a".into()),
                Param::Integer(2),
                Param::Null,
                Param::Integer(1)
            ]
        );
    }
}
