//! Smithy RPC v2 CBOR bodies, translated to and from the JSON document model that every
//! operation works on. Decoding accepts what real clients send (definite and indefinite lengths,
//! 16-, 32- and 64-bit floats); encoding follows the output shape so that timestamps become tag 1
//! over a 64-bit float and doubles keep their full width.

use crate::shapes::{ServiceModel, Shape};
use minicbor::data::{Tag, Type};
use minicbor::{Decoder, Encoder};
use serde_json::{Map, Number, Value};

/// Deeper nesting than any model shape has; a guard against hostile input.
const MAX_DEPTH: usize = 32;

/// Decodes a CBOR request body (empty means "no input") into a JSON value.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let mut d = Decoder::new(bytes);
    let value = item(&mut d, 0)?;
    if d.position() != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the CBOR body",
            bytes.len() - d.position()
        ));
    }
    Ok(value)
}

fn err(e: minicbor::decode::Error) -> String {
    format!("malformed CBOR: {e}")
}

fn is_break(d: &Decoder<'_>) -> Result<bool, String> {
    Ok(d.datatype().map_err(err)? == Type::Break)
}

fn item(d: &mut Decoder<'_>, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("CBOR body is nested too deeply".into());
    }
    Ok(match d.datatype().map_err(err)? {
        Type::Bool => Value::Bool(d.bool().map_err(err)?),
        Type::Null | Type::Undefined => {
            d.skip().map_err(err)?;
            Value::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::Number(d.u64().map_err(err)?.into()),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => Value::Number(d.i64().map_err(err)?.into()),
        Type::Int => {
            let n = i64::try_from(d.int().map_err(err)?)
                .map_err(|_| "CBOR integer out of range".to_string())?;
            Value::Number(n.into())
        }
        Type::F16 | Type::F32 | Type::F64 => float(d.f64().map_err(err)?)?,
        Type::String => Value::String(d.str().map_err(err)?.to_string()),
        Type::StringIndef => {
            let mut s = String::new();
            for part in d.str_iter().map_err(err)? {
                s.push_str(part.map_err(err)?);
            }
            Value::String(s)
        }
        Type::Bytes | Type::BytesIndef => {
            // No operation gitsync serves has blob members; keep them readable all the same.
            use base64::Engine;
            let mut bytes = Vec::new();
            for part in d.bytes_iter().map_err(err)? {
                bytes.extend_from_slice(part.map_err(err)?);
            }
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array().map_err(err)?;
            let mut items = Vec::new();
            match len {
                Some(n) => {
                    for _ in 0..n {
                        items.push(item(d, depth + 1)?);
                    }
                }
                None => {
                    while !is_break(d)? {
                        items.push(item(d, depth + 1)?);
                    }
                    d.set_position(d.position() + 1);
                }
            }
            Value::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map().map_err(err)?;
            let mut map = Map::new();
            let mut entry = |d: &mut Decoder<'_>| -> Result<(), String> {
                let key = match d.datatype().map_err(err)? {
                    Type::String => d.str().map_err(err)?.to_string(),
                    Type::StringIndef => {
                        let mut s = String::new();
                        for part in d.str_iter().map_err(err)? {
                            s.push_str(part.map_err(err)?);
                        }
                        s
                    }
                    other => {
                        return Err(format!("CBOR map keys must be text strings, found {other}"));
                    }
                };
                let value = item(d, depth + 1)?;
                map.insert(key, value);
                Ok(())
            };
            match len {
                Some(n) => {
                    for _ in 0..n {
                        entry(d)?;
                    }
                }
                None => {
                    while !is_break(d)? {
                        entry(d)?;
                    }
                    d.set_position(d.position() + 1);
                }
            }
            Value::Object(map)
        }
        Type::Tag => {
            let tag = d.tag().map_err(err)?;
            match tag.as_u64() {
                // Epoch-seconds timestamp: the document model keeps it as a number.
                1 => item(d, depth + 1)?,
                other => return Err(format!("CBOR tag {other} is not supported")),
            }
        }
        other => return Err(format!("CBOR item of type {other} is not supported")),
    })
}

fn float(f: f64) -> Result<Value, String> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| "NaN and infinite numbers are not accepted".to_string())
}

/// Encodes an output document as CBOR, following `shape` in `model`.
pub fn encode(model: &ServiceModel, shape: Option<&str>, value: &Value) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    write(&mut e, model, shape, value);
    e.into_writer()
}

/// Writing into a `Vec` cannot fail, so encoder results are ignored.
fn write(e: &mut Encoder<Vec<u8>>, model: &ServiceModel, shape: Option<&str>, value: &Value) {
    let shape_def = shape.and_then(|s| model.shape(s));
    match value {
        Value::Null => {
            let _ = e.null();
        }
        Value::Bool(b) => {
            let _ = e.bool(*b);
        }
        Value::Number(n) => {
            if matches!(shape_def, Some(Shape::Timestamp)) {
                let _ = e.tag(Tag::new(1));
                let _ = e.f64(n.as_f64().unwrap_or_default());
            } else if matches!(shape_def, Some(Shape::Double))
                || (n.is_f64() && !matches!(shape_def, Some(Shape::Integer { .. })))
            {
                let _ = e.f64(n.as_f64().unwrap_or_default());
            } else if let Some(u) = n.as_u64() {
                let _ = e.u64(u);
            } else if let Some(i) = n.as_i64() {
                let _ = e.i64(i);
            } else {
                let _ = e.f64(n.as_f64().unwrap_or_default());
            }
        }
        Value::String(s) => {
            let _ = e.str(s);
        }
        Value::Array(items) => {
            let member = match shape_def {
                Some(Shape::List { member, .. }) => Some(member.as_str()),
                _ => None,
            };
            let _ = e.array(items.len() as u64);
            for item in items {
                write(e, model, member, item);
            }
        }
        Value::Object(map) => {
            let _ = e.map(map.len() as u64);
            for (k, v) in map {
                let member = match shape_def {
                    Some(Shape::Structure { members, .. }) => members
                        .iter()
                        .find(|(name, _)| name == k)
                        .map(|(_, s)| s.as_str()),
                    Some(Shape::Map { value, .. }) => Some(value.as_str()),
                    _ => None,
                };
                let _ = e.str(k);
                write(e, model, member, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::CODECONNECTIONS;
    use serde_json::json;

    #[test]
    fn decodes_indefinite_maps_as_the_rust_sdk_sends_them() {
        // Captured from aws-sdk-codeconnections: {"ResourceName":"res","SyncType":"CFN_STACK_SYNC"}.
        let bytes = hex::decode("bf6c5265736f757263654e616d65637265736853796e63547970656e43464e5f535441434b5f53594e43ff").unwrap();
        assert_eq!(
            decode(&bytes).unwrap(),
            json!({"ResourceName": "res", "SyncType": "CFN_STACK_SYNC"})
        );
        assert_eq!(decode(&hex::decode("bfff").unwrap()).unwrap(), json!({}));
        assert_eq!(decode(&[]).unwrap(), json!({}));
    }

    #[test]
    fn decodes_definite_maps_and_every_float_width() {
        // {"a": 1.5 (f16), "b": 1.5 (f32), "c": 1.5 (f64), "d": -3, "e": [true, null]}
        let bytes = hex::decode("a56161f93e006162fa3fc000006163fb3ff8000000000000616422616582f5f6")
            .unwrap();
        assert_eq!(
            decode(&bytes).unwrap(),
            json!({"a": 1.5, "b": 1.5, "c": 1.5, "d": -3, "e": [true, null]})
        );
    }

    #[test]
    fn rejects_malformed_and_trailing_input() {
        assert!(decode(&[0xbf, 0x61]).is_err());
        assert!(decode(&[0xa0, 0x00]).is_err());
        assert!(
            decode(&[0xa1, 0x01, 0x02])
                .unwrap_err()
                .contains("text strings")
        );
        let deep: Vec<u8> = std::iter::repeat_n(0x81, 100).chain([0x00]).collect();
        assert!(decode(&deep).unwrap_err().contains("deeply"));
    }

    #[test]
    fn timestamps_encode_as_tag_1_over_f64() {
        let out = json!({"LatestSync": {"StartedAt": 1700000000.123, "Status": "SUCCEEDED", "Events": []}});
        let bytes = encode(
            &CODECONNECTIONS,
            Some("GetRepositorySyncStatusOutput"),
            &out,
        );
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.map().unwrap(), Some(1));
        assert_eq!(d.str().unwrap(), "LatestSync");
        d.map().unwrap();
        let mut saw_tag = false;
        for _ in 0..3 {
            let key = d.str().unwrap();
            if key == "StartedAt" {
                assert_eq!(d.tag().unwrap().as_u64(), 1);
                assert_eq!(d.datatype().unwrap(), Type::F64);
                assert_eq!(d.f64().unwrap(), 1700000000.123);
                saw_tag = true;
            } else {
                d.skip().unwrap();
            }
        }
        assert!(saw_tag);
        // And back: the decoder reads tag 1 as the number it wraps.
        assert_eq!(decode(&bytes).unwrap(), out);
    }

    proptest::proptest! {
        /// Whatever arrives, decoding answers Ok or Err, never panics; and what decodes
        /// validates against any input shape without panicking either.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Ok(value) = decode(&bytes) {
                for op in CODECONNECTIONS.operations.values() {
                    if let Some(shape) = &op.input {
                        let _ = CODECONNECTIONS.validate(shape, &value);
                    }
                }
            }
        }

        #[test]
        fn encoded_documents_decode_to_themselves(keys in proptest::collection::vec("[A-Za-z]{1,8}", 0..6), n in proptest::prelude::any::<i64>()) {
            let map: serde_json::Map<String, Value> = keys.iter().map(|k| (k.clone(), json!([n, k, {"x": true}]))).collect();
            let value = Value::Object(map);
            proptest::prop_assert_eq!(decode(&encode(&CODECONNECTIONS, None, &value)).unwrap(), value);
        }
    }
}
