//! Reasons fit for a log line. A decoder quotes what it refused (serde's `invalid type: string
//! "…", expected u64`), and what it refused can be a customer's text: [`quoted_values`] blanks every
//! double-quoted span, so that no message body reaches the logs at the default level. The full
//! reason still travels with the dead letter, in its `wabaflow-error` header beside the bytes it
//! describes.

use std::borrow::Cow;

/// `reason` with the contents of each double-quoted span replaced by `…`. Quotes escaped inside a
/// span (`\"`, as `{:?}` writes them) do not end it; an unclosed span is blanked to the end.
pub fn quoted_values(reason: &str) -> Cow<'_, str> {
    if !reason.contains('"') {
        return Cow::Borrowed(reason);
    }
    let mut redacted = String::with_capacity(reason.len());
    let mut chars = reason.chars();
    while let Some(c) = chars.next() {
        redacted.push(c);
        if c != '"' {
            continue;
        }
        // Inside a span: skip to its closing quote.
        redacted.push('…');
        while let Some(inner) = chars.next() {
            match inner {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    redacted.push('"');
                    break;
                }
                _ => {}
            }
        }
    }
    Cow::Owned(redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoders_quote_of_the_data_is_blanked_and_the_rest_kept() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Event {
            id: u64,
        }
        let err = serde_json::from_str::<Event>(r#"{"id":"Hola, \"mi\" pedido 42"}"#)
            .expect_err("a string is not a number");
        let reason = err.to_string();
        assert!(
            reason.contains("pedido"),
            "{reason}: the error quotes the text"
        );
        assert_eq!(
            quoted_values(&reason),
            "invalid type: string \"…\", expected u64 at line 1 column 30"
        );
    }

    #[test]
    fn reasons_without_quotes_are_kept_and_an_unclosed_quote_blanks_the_rest() {
        assert!(matches!(
            quoted_values("missing field `id` at line 1 column 2"),
            Cow::Borrowed("missing field `id` at line 1 column 2")
        ));
        assert_eq!(quoted_values(r#"a "b" c "d e"#), "a \"…\" c \"…");
        assert_eq!(quoted_values(r#"ends in \"#), r#"ends in \"#);
    }
}
