//! Bounded YAML reader: events from `granit-parser` into [`Node`] documents.
//!
//! Aliases are expanded while reading (as go-yaml does when kubectl prints), with a budget on
//! the number of nodes so that a billion-laughs document fails fast; nesting depth and input
//! size are bounded too.

use granit_parser::{Event, Parser, ScalarStyle};

use super::node::{Node, Scalar, Tag};
use super::resolve::{Resolved, resolve_v3};

/// Limits applied while reading one YAML stream.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of collections.
    pub max_depth: usize,
    /// Most nodes a stream may expand to (aliases count with their full size).
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 20,
            max_depth: 200,
            max_nodes: 2_000_000,
        }
    }
}

/// Why a YAML stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The text is not YAML.
    #[error("yaml: line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// The input is larger than [`Limits::max_bytes`].
    #[error("yaml: input of {0} bytes exceeds the size limit")]
    TooLarge(usize),
    /// Collections nest deeper than [`Limits::max_depth`].
    #[error("yaml: line {0}: nesting exceeds the depth limit")]
    TooDeep(usize),
    /// Alias expansion would exceed [`Limits::max_nodes`].
    #[error("yaml: document expands to more than {0} nodes (alias bomb?)")]
    TooManyNodes(usize),
    /// An alias names no anchor.
    #[error("yaml: line {0}: unknown anchor referenced")]
    UnknownAnchor(usize),
    /// The same key appears twice in one mapping.
    #[error("yaml: line {line}: mapping key {key:?} already defined")]
    DuplicateKey { line: usize, key: String },
    /// A mapping key is itself a collection.
    #[error("yaml: line {0}: collection used as a mapping key")]
    ComplexKey(usize),
}

enum Frame {
    Seq(Vec<Node>, usize),
    Map {
        entries: Vec<(String, Node)>,
        key: Option<String>,
        merges: Vec<Node>,
        anchor: usize,
        line: usize,
    },
}

/// Reads every document of a stream. Empty documents come back as `None` entries so callers
/// can skip them the way kustomize does.
pub fn parse_documents(text: &str, limits: Limits) -> Result<Vec<Option<Node>>, YamlError> {
    parse_stream(text, limits, false)
}

/// [`parse_documents`] for files read the way kustomize reads its kustomization file
/// (go-yaml v2 into a map), where a repeated key replaces the earlier value.
pub fn parse_documents_last_key_wins(
    text: &str,
    limits: Limits,
) -> Result<Vec<Option<Node>>, YamlError> {
    parse_stream(text, limits, true)
}

fn parse_stream(
    text: &str,
    limits: Limits,
    last_key_wins: bool,
) -> Result<Vec<Option<Node>>, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError::TooLarge(text.len()));
    }
    let mut fixed: Option<String> = None;
    let mut prepassed = false;
    // Each retry parses the whole text again, so their number bounds the work a hostile
    // file can cause; real files need the prepass and rarely any retry after it.
    for _ in 0..MAX_QUOTED_RETRIES {
        let current = fixed.as_deref().unwrap_or(text);
        match parse_once(current, limits, last_key_wins) {
            Err(Retry::Quoted { .. }) if !prepassed => {
                // One pass over the whole text fixes the usual case (CRD descriptions) at once;
                // whatever it misses is fixed scalar by scalar below.
                prepassed = true;
                fixed = Some(indent_all_quoted_continuations(current));
            }
            Err(Retry::Quoted { line, offset }) => {
                // A fix that changes nothing would be retried forever.
                match indent_quoted_continuation(current, line, offset).filter(|t| t != current) {
                    Some(t) => fixed = Some(t),
                    None => {
                        return Err(YamlError::Syntax {
                            line,
                            message: QUOTED_INDENT.into(),
                        });
                    }
                }
            }
            Err(Retry::Fail(e)) => return Err(e),
            Ok(docs) => return Ok(docs),
        }
    }
    Err(YamlError::Syntax {
        line: 0,
        message: QUOTED_INDENT.into(),
    })
}

const QUOTED_INDENT: &str = "invalid indentation in multiline quoted scalar";
const MAX_QUOTED_RETRIES: usize = 64;

enum Retry {
    /// A quoted scalar continues at its key's indentation: go-yaml accepts that, the
    /// spec-strict scanner does not. `line` is 1-based, `offset` a char index.
    Quoted {
        line: usize,
        offset: usize,
    },
    Fail(YamlError),
}

impl From<YamlError> for Retry {
    fn from(e: YamlError) -> Retry {
        Retry::Fail(e)
    }
}

/// Indents the continuation lines of the quoted scalar containing char `offset` by one space
/// (which does not change a quoted scalar's value), so the strict scanner accepts it.
fn indent_quoted_continuation(text: &str, line: usize, offset: usize) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    // The opening quote: the nearest quote before `offset` that starts a value.
    let mut p = offset.min(chars.len());
    let quote = loop {
        if p == 0 {
            return None;
        }
        p -= 1;
        let c = chars[p];
        if (c == '\'' || c == '"') && p >= 1 {
            let prev = chars[p - 1];
            let prev2 = if p >= 2 { chars[p - 2] } else { '\n' };
            if (prev == ' ' && (prev2 == ':' || prev2 == '-' || prev2 == ','))
                || prev == '['
                || prev == '{'
            {
                break c;
            }
        }
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let first = line.checked_sub(1)?;
    if first >= lines.len() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut closed = false;
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if i >= first && !closed {
            out.push(' ');
            closed = closes(l, quote);
        }
        out.push_str(l);
    }
    Some(out)
}

fn leading_spaces(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

/// Where a quoted scalar that starts on this line and stays open begins: the quote and the
/// indentation of its key or sequence item. Also reports block scalar headers.
enum LineStart {
    OpenQuote { quote: char, indent: usize },
    BlockScalar { indent: usize },
    Other,
}

fn classify(line: &str) -> LineStart {
    let indent = leading_spaces(line);
    let mut rest = &line[indent..];
    let mut col = indent;
    while let Some(r) = rest.strip_prefix("- ") {
        let pad = r.len() - r.trim_start_matches(' ').len();
        rest = &r[pad..];
        col += 2 + pad;
    }
    if rest.starts_with('#') {
        return LineStart::Other;
    }
    // The value: after the first `: ` outside quotes, or the whole item.
    let value = if rest.starts_with('\'') || rest.starts_with('"') {
        rest
    } else {
        match rest.find(": ") {
            Some(i) => rest[i + 2..].trim_start(),
            None => match rest.strip_suffix(':') {
                Some(_) => return LineStart::Other,
                None => return LineStart::Other,
            },
        }
    };
    let v = value.split(" #").next().unwrap_or(value).trim_end();
    if v.starts_with('|') || v.starts_with('>') {
        return LineStart::BlockScalar {
            indent: col.min(indent.max(col)),
        };
    }
    let Some(quote) = v.chars().next().filter(|c| *c == '\'' || *c == '"') else {
        return LineStart::Other;
    };
    if closes(&value[1..], quote) {
        return LineStart::Other;
    }
    LineStart::OpenQuote { quote, indent: col }
}

/// Indents every continuation line of multi-line quoted scalars past its key's column (go-yaml
/// accepts them at the key's column; the strict scanner does not). Block scalars are skipped.
fn indent_all_quoted_continuations(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = String::with_capacity(text.len() + 1024);
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line);
        i += 1;
        match classify(line) {
            LineStart::BlockScalar { indent } => {
                while i < lines.len()
                    && (lines[i].trim().is_empty() || leading_spaces(lines[i]) > indent)
                {
                    out.push('\n');
                    out.push_str(lines[i]);
                    i += 1;
                }
            }
            LineStart::OpenQuote { quote, indent } => {
                while i < lines.len() {
                    let l = lines[i];
                    out.push('\n');
                    let lead = leading_spaces(l);
                    if !l.trim().is_empty() && lead <= indent {
                        out.push_str(&" ".repeat(indent + 1 - lead));
                    }
                    out.push_str(l);
                    i += 1;
                    if closes(l, quote) {
                        break;
                    }
                }
            }
            LineStart::Other => {}
        }
    }
    out
}

fn closes(line: &str, quote: char) -> bool {
    let b: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if quote == '\'' && b[i] == '\'' {
            if b.get(i + 1) == Some(&'\'') {
                i += 2;
                continue;
            }
            return true;
        }
        if quote == '"' {
            if b[i] == '\\' {
                i += 2;
                continue;
            }
            if b[i] == '"' {
                return true;
            }
        }
        i += 1;
    }
    false
}

fn parse_once(text: &str, limits: Limits, last_key_wins: bool) -> Result<Vec<Option<Node>>, Retry> {
    let mut docs = Vec::new();
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut current: Option<Node> = None;
    let mut budget = limits.max_nodes;
    let text_chars = text.chars().count();
    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(x) => x,
            Err(e) if e.info() == QUOTED_INDENT => {
                return Err(Retry::Quoted {
                    line: e.marker().line(),
                    offset: e.marker().index(),
                });
            }
            Err(e) => {
                return Err(Retry::Fail(YamlError::Syntax {
                    line: e.marker().line().saturating_sub(1).max(1),
                    message: e.info().to_string(),
                }));
            }
        };
        let line = span.start.line();
        let done: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd => None,
            Event::DocumentStart(..) => {
                anchors.clear();
                current = None;
                None
            }
            Event::DocumentEnd => {
                docs.push(current.take());
                None
            }
            Event::Alias(id) => {
                let node = anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                    .ok_or(YamlError::UnknownAnchor(line))?;
                let w = node.weight();
                budget = budget
                    .checked_sub(w)
                    .ok_or(YamlError::TooManyNodes(limits.max_nodes))?;
                Some((node, 0))
            }
            Event::Scalar(value, style, anchor, tag) => {
                budget = budget
                    .checked_sub(1)
                    .ok_or(YamlError::TooManyNodes(limits.max_nodes))?;
                // go-yaml v3 tags every parsed scalar: plain ones with the type their text reads as.
                let tag = match tag {
                    Some(t) if t.handle() == "tag:yaml.org,2002:" => match t.suffix() {
                        "int" => Tag::Int,
                        "float" => Tag::Float,
                        "bool" => Tag::Bool,
                        "null" => Tag::Null,
                        _ => Tag::Str,
                    },
                    Some(_) => Tag::Str,
                    None if style == ScalarStyle::Plain => match resolve_v3(&value) {
                        Resolved::Null => Tag::Null,
                        Resolved::Bool(_) => Tag::Bool,
                        Resolved::Int(_) => Tag::Int,
                        Resolved::Float(_) => Tag::Float,
                        Resolved::Timestamp(_) => Tag::Timestamp,
                        Resolved::Str => Tag::Str,
                    },
                    None => Tag::Str,
                };
                let quoted = style != ScalarStyle::Plain;
                let mut value = value.into_owned();
                // The parser reports an empty node as `~`; go-yaml keeps its text empty, which
                // shows where kustomize turns values into strings (annotations).
                if !quoted && value == "~" && span.start.index() == span.end.index() {
                    value.clear();
                }
                // A block scalar cut off by the end of input has no final line break (go-yaml).
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
                    && !text.ends_with('\n')
                    && span.end.index() >= text_chars
                    && value.ends_with('\n')
                {
                    value.pop();
                }
                Some((Node::Scalar(Scalar { value, tag, quoted }), anchor))
            }
            Event::SequenceStart(_, anchor, _) => {
                if stack.len() >= limits.max_depth {
                    return Err(YamlError::TooDeep(line).into());
                }
                stack.push(Frame::Seq(Vec::new(), anchor));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => Some((Node::Seq(items), anchor)),
                _ => None,
            },
            Event::MappingStart(_, anchor, _) => {
                if stack.len() >= limits.max_depth {
                    return Err(YamlError::TooDeep(line).into());
                }
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    merges: Vec::new(),
                    anchor,
                    line,
                });
                None
            }
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    mut entries,
                    merges,
                    anchor,
                    ..
                }) => {
                    // `<<` merges: explicit keys win over merged ones, earlier merges over later.
                    for m in merges {
                        let sources: Vec<Node> = match m {
                            Node::Seq(items) => items,
                            other => vec![other],
                        };
                        for src in sources {
                            if let Node::Map(kv) = src {
                                for (k, v) in kv {
                                    if !entries.iter().any(|(ek, _)| *ek == k) {
                                        entries.push((k, v));
                                    }
                                }
                            }
                        }
                    }
                    Some((Node::Map(entries), anchor))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((node, anchor)) = done else { continue };
        if anchor != 0 {
            anchors.push((anchor, node.clone()));
        }
        match stack.last_mut() {
            None => current = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                merges,
                line: map_line,
                ..
            }) => match key.take() {
                None => match node {
                    Node::Scalar(s) => *key = Some(s.value),
                    _ => return Err(YamlError::ComplexKey(*map_line).into()),
                },
                Some(k) => {
                    if k == "<<" {
                        merges.push(node);
                    } else if let Some(entry) = entries.iter_mut().find(|(ek, _)| *ek == k) {
                        if !last_key_wins {
                            return Err(YamlError::DuplicateKey { line, key: k }.into());
                        }
                        entry.1 = node;
                    } else {
                        entries.push((k, node));
                    }
                }
            },
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted_scalars_keep_their_typing() {
        let docs = parse_documents("a: 1\nb: '1'\nc: |\n  x\n", Limits::default()).expect("parses");
        let doc = docs[0].as_ref().expect("one document");
        assert!(matches!(doc.get("a"), Some(Node::Scalar(s)) if s.tag == Tag::Int && !s.quoted));
        assert_eq!(doc.get("b"), Some(&Node::str("1")));
        assert_eq!(doc.get("c"), Some(&Node::str("x\n")));
    }

    #[test]
    fn a_billion_laughs_document_fails_fast() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse_documents(&text, Limits::default()).expect_err("bounded");
        assert!(matches!(err, YamlError::TooManyNodes(_)));
    }

    #[test]
    fn quoted_scalars_may_continue_at_the_key_indentation_as_in_go_yaml() {
        let docs = parse_documents(
            "a:\n  b: 'one\n  two'\n  c: \"x\n  y\"\n",
            Limits::default(),
        )
        .expect("parses");
        let a = docs[0].as_ref().and_then(|d| d.get("a")).expect("a");
        assert_eq!(a.get("b"), Some(&Node::str("one two")));
        assert_eq!(a.get("c"), Some(&Node::str("x y")));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(1000) + &"]".repeat(1000);
        assert!(parse_documents(&text, Limits::default()).is_err());
    }

    #[test]
    fn merge_keys_are_expanded_with_explicit_keys_winning() {
        let docs = parse_documents(
            "b: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n",
            Limits::default(),
        )
        .expect("parses");
        let c = docs[0].as_ref().and_then(|d| d.get("c")).expect("c");
        assert_eq!(c.get("x").and_then(Node::as_str), Some("1"));
        assert_eq!(c.get("y").and_then(Node::as_str), Some("3"));
    }
}

#[cfg(test)]
mod robustness {
    use super::*;
    use crate::yaml::to_yaml;

    const SAMPLE: &str = "a: &x {b: [1, 'two', \"th\\nree\"], c: |\n    lit\n  }\nd: *x\ne:\n- - f: >-\n      folded\n  - !!str 3\n<<: *x\n---\n'k': \"v\" # c\n...\n";

    #[test]
    fn no_prefix_of_a_tricky_document_panics_the_reader_or_printer() {
        for (i, _) in SAMPLE.char_indices() {
            if let Ok(docs) = parse_documents(&SAMPLE[..i], Limits::default()) {
                for d in docs.into_iter().flatten() {
                    let _ = to_yaml(&d);
                }
            }
        }
    }

    #[test]
    fn byte_noise_never_panics() {
        // A small deterministic generator keeps the test reproducible.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"ab:- \n[]{}'\"|>&*!#%@,?\\\t0.e~";
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..40 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push(alphabet[(state % alphabet.len() as u64) as usize] as char);
            }
            if let Ok(docs) = parse_documents(&s, Limits::default()) {
                for d in docs.into_iter().flatten() {
                    let _ = to_yaml(&d);
                }
            }
        }
    }
}
