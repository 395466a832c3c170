//! Reading an internally tagged enum (`{"kind": "…", …fields}`) without serde's buffer.
//!
//! serde's derive reads an internally tagged enum whole into a private buffer, then reads the
//! buffer again once it found the tag: every event a stage decodes was parsed twice. wabaflow
//! always writes the tag first, so [`tag_first!`] declares the enum together with a reader that
//! takes the first key, and when it is the tag, reads the variant straight from the rest of the
//! object through an externally tagged twin of the enum (serde's own code, every field attribute
//! as written). An object whose tag is elsewhere (written by another tool, or a
//! `serde_json::Value`, whose keys are sorted) is read through a JSON value instead: slower, same
//! result.

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Declares an internally tagged enum of struct variants whose `Deserialize` reads the tag first.
/// The enum's own attributes (derives, `#[serde(tag = …)]` for `Serialize`) are written as usual,
/// minus `Deserialize`; `tag = "…"` repeats the tag for the reader. Variant names are read in
/// `snake_case`, as the enum must write them.
macro_rules! tag_first {
    (
        tag = $tag:literal;
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident {
                    $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)?
                }
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$variant_meta])* $variant { $( $(#[$field_meta])* $field: $ty ),* } ),*
        }

        const _: () = {
            /// The same variants, externally tagged: what the reader hands the rest of the object.
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "snake_case")]
            #[allow(dead_code)]
            enum ByTag {
                $( $(#[$variant_meta])* $variant { $( $(#[$field_meta])* $field: $ty ),* } ),*
            }

            impl From<ByTag> for $name {
                fn from(by_tag: ByTag) -> Self {
                    match by_tag {
                        $( ByTag::$variant { $($field),* } => $name::$variant { $($field),* } ),*
                    }
                }
            }

            impl<'de> serde::Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                    $crate::tag_first::read::<D, ByTag>(deserializer, $tag).map(Self::from)
                }
            }
        };
    };
}

pub(crate) use tag_first;

/// Reads `{tag: "variant", …fields}` as the externally tagged `T`.
pub fn read<'de, D, T>(deserializer: D, tag: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    deserializer.deserialize_map(TagFirst {
        tag,
        read: std::marker::PhantomData,
    })
}

struct TagFirst<T> {
    tag: &'static str,
    read: std::marker::PhantomData<T>,
}

impl<'de, T: DeserializeOwned> Visitor<'de> for TagFirst<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an object with a `{}`", self.tag)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::missing_field(self.tag));
        };
        if first == self.tag {
            let variant: String = map.next_value()?;
            return T::deserialize(Rest { variant, map });
        }
        // The tag is not first: gather the object and read it externally tagged.
        let mut object = Map::new();
        object.insert(first, map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        let variant = match object.remove(self.tag) {
            Some(Value::String(variant)) => variant,
            Some(other) => {
                return Err(de::Error::invalid_type(
                    de::Unexpected::Other(&other.to_string()),
                    &"a variant name",
                ));
            }
            None => return Err(de::Error::missing_field(self.tag)),
        };
        let tagged = Value::Object(Map::from_iter([(variant, Value::Object(object))]));
        T::deserialize(tagged).map_err(de::Error::custom)
    }
}

/// The rest of an object whose tag was read: an enum whose variant is `variant` and whose fields
/// are the entries left in `map`.
struct Rest<A> {
    variant: String,
    map: A,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for Rest<A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for Rest<A> {
    type Error = A::Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), A::Error> {
        let name: StrDeserializer<'_, A::Error> = self.variant.as_str().into_deserializer();
        let variant = seed.deserialize(name)?;
        Ok((variant, self))
    }
}

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Rest<A> {
    type Error = A::Error;

    fn unit_variant(mut self) -> Result<(), A::Error> {
        // A unit variant carries nothing but its tag; skip whatever else the object holds.
        while self
            .map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        seed.deserialize(MapAccessDeserializer::new(self.map))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, A::Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::Map,
            &"a struct variant",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(self.map)
    }
}

/// Decoding behaves exactly like serde's own internally tagged read.
#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::json;

    tag_first! {
        tag = "kind";
        #[derive(Debug, PartialEq, Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Shape {
            Circle { radius: u32 },
            /// With a defaulted field.
            NamedBox {
                width: u32,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                label: Option<String>,
            },
        }
    }

    #[test]
    fn reads_the_tag_first_as_written() {
        let shape = Shape::NamedBox {
            width: 3,
            label: Some("a".into()),
        };
        let json = serde_json::to_string(&shape).expect("encodes");
        assert!(json.starts_with(r#"{"kind":"named_box""#), "{json}");
        assert_eq!(
            serde_json::from_str::<Shape>(&json).expect("decodes"),
            shape
        );
    }

    #[test]
    fn reads_a_tag_anywhere_in_the_object() {
        let shape: Shape =
            serde_json::from_str(r#"{"width": 2, "kind": "named_box"}"#).expect("decodes");
        assert_eq!(
            shape,
            Shape::NamedBox {
                width: 2,
                label: None
            }
        );
        let shape: Shape =
            serde_json::from_value(json!({"radius": 1, "kind": "circle"})).expect("decodes");
        assert_eq!(shape, Shape::Circle { radius: 1 });
    }

    #[test]
    fn refuses_what_serde_refuses() {
        for (bad, why) in [
            (r#"{"radius": 1}"#, "missing field `kind`"),
            (r#"{}"#, "missing field `kind`"),
            (
                r#"{"kind": "square", "side": 1}"#,
                "unknown variant `square`",
            ),
            (r#"{"kind": "circle"}"#, "missing field `radius`"),
            (r#"{"kind": "circle", "radius": "big"}"#, "invalid type"),
            (r#"[1]"#, "invalid type"),
        ] {
            let err = serde_json::from_str::<Shape>(bad)
                .expect_err(bad)
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
