//! Query strings and `application/x-www-form-urlencoded` bodies, read into
//! name/value pairs.

use crate::task::decode_path_segment;

/// The decoded pairs of a query string or form body; a pair that does not
/// decode is left out, as a browser never sends one.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

/// At most this many pairs are read: a page takes a handful.
const MAX_PAIRS: usize = 32;

impl Form {
    /// Reads `a=1&b=two+words&c=%3C`.
    pub(crate) fn parse(text: &str) -> Form {
        let pairs = text
            .split('&')
            .filter(|p| !p.is_empty())
            .take(MAX_PAIRS)
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((decode(name)?, decode(value)?))
            })
            .collect();
        Form { pairs }
    }

    /// Reads a body, which must be UTF-8 to mean anything.
    pub(crate) fn parse_body(body: &[u8]) -> Form {
        std::str::from_utf8(body)
            .map(Form::parse)
            .unwrap_or_default()
    }

    /// The first value of `name`, when it is there and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

fn decode(s: &str) -> Option<String> {
    decode_path_segment(&s.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_and_bad_ones_dropped() {
        let f = Form::parse("type=send.email&x=a+b%3C&bad=%ZZ&empty=&flag");
        assert_eq!(f.get("type"), Some("send.email"));
        assert_eq!(f.get("x"), Some("a b<"));
        assert_eq!(f.get("bad"), None);
        assert_eq!(f.get("empty"), None);
        assert_eq!(f.get("flag"), None);
        assert!(Form::parse_body(&[0xff, b'=', b'1'])
            .get("\u{fffd}")
            .is_none());
    }
}
