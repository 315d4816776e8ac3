//! Reads a `.env` file: `KEY=value` lines, `#` comments, optional `export `,
//! single or double quotes. This module only reads; what is done with the
//! values is the caller's: the configuration takes its keys' values from
//! them, and `run` also exports every variable not already set into the
//! process environment (`Args::export_dotenv`), so handler programs see them.
//! A secret in `.env` reaches a child process unless it is one of the secret
//! variables or is named in `SECRET_ENV`: those are removed before a child
//! starts.

use std::path::Path;

use crate::error::Error;

/// The `KEY=value` pairs of the file at `path`, in order.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    parse_file(path, &text)
}

/// The `KEY=value` pairs of `text`, read from the file at `path`; an error
/// names the file and the line.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<(String, String)>, Error> {
    parse(text)
        .map_err(|(line, problem)| Error::config(format!("{}:{line}", path.display()), problem))
}

/// Parses `.env` text; an error carries the 1-based line number and the problem.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut pairs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err((i + 1, format!("expected KEY=value, found {line:?}")));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((i + 1, format!("{key:?} is not a variable name")));
        }
        pairs.push((
            key.to_string(),
            unquote(value.trim()).map_err(|p| (i + 1, p))?,
        ));
    }
    Ok(pairs)
}

fn unquote(value: &str) -> Result<String, String> {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            let Some(end) = rest.find(quote) else {
                return Err(format!("unterminated {quote} quote"));
            };
            let inner = &rest[..end];
            return Ok(if quote == '"' {
                inner.replace("\\n", "\n").replace("\\\"", "\"")
            } else {
                inner.to_string()
            });
        }
    }
    // An unquoted value ends at ` #`: the rest of the line is a comment.
    Ok(value
        .split(" #")
        .next()
        .unwrap_or("")
        .trim_end()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let text = "# comment\nAPI_URL=http://x/v1\nexport A='single # kept'\nB=\"two\\nlines\"\nC=plain # note\nEMPTY=\n";
        let pairs = parse(text).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("API_URL".into(), "http://x/v1".into()),
                ("A".into(), "single # kept".into()),
                ("B".into(), "two\nlines".into()),
                ("C".into(), "plain".into()),
                ("EMPTY".into(), "".into()),
            ]
        );
    }

    #[test]
    fn names_the_bad_line() {
        assert_eq!(parse("A=1\nnonsense\n").unwrap_err().0, 2);
        assert_eq!(parse("A=\"open\n").unwrap_err().0, 1);
        assert_eq!(parse("BAD KEY=1").unwrap_err().0, 1);
    }
}
