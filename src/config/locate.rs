//! Where in a configuration file a parse error lies: its line and column,
//! and the dotted path of the key there (`attestor.jwt[0].issuer`).

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The error of a file that does not parse as the configuration: names the
/// file, the line, the key and the problem, and quotes the line.
pub(super) fn describe(error: &toml::de::Error, text: &str, path: &Path) -> anyhow::Error {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return anyhow::anyhow!("{}: {message}", path.display());
    };
    let (line, column) = line_and_column(text, span.start);
    let key = key_at(text, span.start)
        .map(|key| format!(", key `{key}`"))
        .unwrap_or_default();
    let quoted = text.lines().nth(line - 1).unwrap_or_default().trim_end();
    anyhow::anyhow!(
        "{}: line {line}, column {column}{key}: {message}\n  {line} | {quoted}",
        path.display()
    )
}

/// The 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The dotted path of the narrowest key or value that covers `offset`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(text).ok()?;
    let mut best = None;
    walk_table(root.get_ref(), "", offset, &mut best);
    best.map(|(_, path)| path)
}

/// The narrowest span found so far, and its path.
type Best = Option<(usize, String)>;

fn walk_table(table: &DeTable<'_>, prefix: &str, offset: usize, best: &mut Best) {
    for (key, value) in table.iter() {
        let key_text = quote_key(key.get_ref());
        let path = if prefix.is_empty() {
            key_text
        } else {
            format!("{prefix}.{key_text}")
        };
        consider(key.span(), &path, offset, best);
        walk_value(value, &path, offset, best);
    }
}

fn walk_value(value: &Spanned<DeValue<'_>>, path: &str, offset: usize, best: &mut Best) {
    consider(value.span(), path, offset, best);
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, path, offset, best),
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                walk_value(item, &format!("{path}[{i}]"), offset, best);
            }
        }
        _ => {}
    }
}

fn consider(span: Range<usize>, path: &str, offset: usize, best: &mut Best) {
    let covers = span.contains(&offset) || (span.is_empty() && span.start == offset);
    // On a tie the later (deeper) entry wins.
    if covers && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
        *best = Some((span.len(), path.to_owned()));
    }
}

/// A key as TOML would write it: bare when it can be.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 9), (2, 3));
        assert_eq!(line_and_column(text, 999), (3, 1));
    }

    #[test]
    fn the_narrowest_key_names_the_spot() {
        let text = "top = 1\n[[attestor.jwt]]\nname = \"a\"\n\
                    require = { \"/repository_owner\" = \"x\" }\n";
        let at = |needle: &str| key_at(text, text.find(needle).unwrap()).unwrap();
        assert_eq!(at("top"), "top");
        assert_eq!(at("\"a\""), "attestor.jwt[0].name");
        assert_eq!(at("\"x\""), "attestor.jwt[0].require.\"/repository_owner\"");
    }
}
