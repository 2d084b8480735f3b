//! go-yaml v2's `Marshal` of the decoded value, the last step of kubectl's printing: keys in
//! go-yaml v2's "natural" order, sequences not indented under their key, plain scalars folded at
//! column 80, quoting and block styles chosen by libyaml's scalar analysis.

use std::cmp::Ordering;

use super::json::{JsonError, Value, format_go_g, format_json_float, value};
use super::node::Node;
use super::resolve::v2_plain_is_string;

const BEST_WIDTH: usize = 80;
const INDENT: usize = 2;

/// Prints one document the way `kubectl kustomize` prints a resource (no `---`).
pub fn to_yaml(node: &Node) -> Result<String, JsonError> {
    let mut v = value(node)?;
    through_yaml_reader(&mut v)?;
    let v = renormalize(v);
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
    };
    e.node(&v, 0, Ctx::Root);
    if !e.out.ends_with('\n') {
        e.out.push('\n');
    }
    Ok(e.out)
}

/// What go-yaml's reader makes of the JSON text of `v`: encoding/json escapes the C0 controls
/// but writes DEL, the C1 controls and U+FFFE/U+FFFF as they are, which the reader refuses,
/// and NEL (U+0085) as it is, which the reader takes for a line break inside a quoted scalar
/// and folds.
fn through_yaml_reader(v: &mut Value<'_>) -> Result<(), JsonError> {
    let refused =
        |c: char| matches!(c, '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}');
    let read = |text: &str| {
        if text.contains(refused) {
            return Err(JsonError::ControlCharacter);
        }
        Ok(text.contains('\u{85}').then(|| fold_line_breaks(text)))
    };
    match v {
        Value::Str(text) => {
            if let Some(folded) = read(text)? {
                *text = folded.into();
            }
        }
        Value::Seq(items) => items.iter_mut().try_for_each(through_yaml_reader)?,
        Value::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                if read(key)?.is_some() {
                    // A folded key would need an owned key; kubectl's output for one is not
                    // worth that: refuse it as the reader would refuse a control character.
                    return Err(JsonError::ControlCharacter);
                }
                through_yaml_reader(value)?;
            }
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
    Ok(())
}

/// YAML's folding of line breaks (here NEL) in a double-quoted scalar: blanks around a break
/// dropped, a single break read as a space, each further break as a newline.
fn fold_line_breaks(text: &str) -> String {
    let lines: Vec<&str> = text.split('\u{85}').collect();
    let mut out = String::new();
    let mut breaks = 0;
    for (i, line) in lines.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == lines.len();
        let mut line = *line;
        if !first {
            line = line.trim_start_matches([' ', '\t']);
        }
        if !last {
            line = line.trim_end_matches([' ', '\t']);
        }
        if !first && (line.is_empty() && !last) {
            breaks += 1;
            continue;
        }
        if !first {
            if breaks == 0 {
                out.push(' ');
            }
            out.extend(std::iter::repeat_n('\n', breaks));
            breaks = 0;
        }
        out.push_str(line);
    }
    out
}

/// The JSON hop: floats come back as ints when JSON printed them without a fraction, and go-yaml
/// v2 re-sorts keys in its own order.
fn renormalize(v: Value<'_>) -> Value<'_> {
    match v {
        Value::Float(f) => {
            let s = format_json_float(f);
            if !s.contains(['.', 'e', 'E'])
                && let Ok(i) = s.parse::<i128>()
            {
                return Value::Int(i);
            }
            Value::Float(f)
        }
        Value::Seq(items) => Value::Seq(items.into_iter().map(renormalize).collect()),
        Value::Map(m) => {
            let mut m: Vec<_> = m.into_iter().map(|(k, v)| (k, renormalize(v))).collect();
            m.sort_by(|a, b| v2_key_cmp(a.0, b.0));
            Value::Map(m)
        }
        other => other,
    }
}

/// go-yaml v2's key order: letters after non-letters, runs of digits compared as numbers.
pub(crate) fn v2_key_cmp(a: &str, b: &str) -> Ordering {
    if v2_key_less(a, b) {
        Ordering::Less
    } else if v2_key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn v2_key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let n = ar.len().min(br.len());
    for i in 0..n {
        if ar[i] == br[i] {
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Root,
    /// Value of a block mapping entry.
    MapValue,
    /// Value of a block mapping entry whose key was written as `? key` (too long or
    /// multi-line for a simple key): a sequence here is indented.
    ComplexValue,
    /// Item of a block sequence.
    SeqItem,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
}

struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_printable(c: char) -> bool {
    let v = c as u32;
    v == 0x0A
        || (0x20..=0x7E).contains(&v)
        || (0xA0..=0xD7FF).contains(&v)
        || ((0xE000..=0xFFFD).contains(&v) && v != 0xFEFF)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c) || c == '\0',
    }
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let (mut block_ind, mut flow_ind) = (false, false);
    if chars.len() >= 3
        && (s.starts_with("---") || s.starts_with("..."))
        && is_blankz(chars.get(3).copied())
    {
        block_ind = true;
        flow_ind = true;
    }
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut prev_space, mut prev_break) =
        (false, false, false, false);
    let mut preceded_by_ws = true;
    let last = chars.len() - 1;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = is_blankz(chars.get(i + 1).copied());
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_ind = true;
                    block_ind = true;
                }
                '?' | ':' => {
                    flow_ind = true;
                    if followed_by_ws {
                        block_ind = true;
                    }
                }
                '-' if followed_by_ws => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_ind = true,
                ':' => {
                    flow_ind = true;
                    if followed_by_ws {
                        block_ind = true;
                    }
                }
                '#' if preceded_by_ws => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == last {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if i == last {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = is_blankz(Some(c));
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.block_plain_allowed = false;
    }
    if block_ind {
        a.block_plain_allowed = false;
    }
    let _ = flow_ind;
    a
}

impl Emitter {
    fn put(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn put_char(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_indent(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put_char(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn indicator(&mut self, s: &str, need_ws: bool, is_ws: bool, is_indention: bool) {
        if need_ws && !self.whitespace {
            self.put_char(' ');
        }
        self.put(s);
        self.whitespace = is_ws;
        self.indention = self.indention && is_indention;
    }

    /// `indent`: the indentation of the collection holding this node.
    fn node(&mut self, v: &Value, indent: usize, ctx: Ctx) {
        match v {
            Value::Map(m) if !m.is_empty() => {
                let inner = match ctx {
                    Ctx::Root => 0,
                    _ => indent + INDENT,
                };
                for (k, val) in m.iter() {
                    self.write_indent(inner);
                    // libyaml's simple-key test: at most 128 bytes and on one line.
                    if k.len() <= 128 && !analyze(k).multiline {
                        self.scalar_str(k, inner, true);
                        self.indicator(":", false, false, false);
                        self.node(val, inner, Ctx::MapValue);
                    } else {
                        self.indicator("?", true, false, true);
                        self.scalar_str(k, inner, false);
                        self.write_indent(inner);
                        self.indicator(":", true, false, true);
                        self.node(val, inner, Ctx::ComplexValue);
                    }
                }
            }
            Value::Seq(items) if !items.is_empty() => {
                // Sequences under a mapping key are not indented (go-yaml v2's "indentless").
                let inner = match ctx {
                    Ctx::Root => 0,
                    Ctx::MapValue => indent,
                    Ctx::SeqItem | Ctx::ComplexValue => indent + INDENT,
                };
                for item in items.iter() {
                    self.write_indent(inner);
                    self.indicator("-", true, false, true);
                    self.node(item, inner, Ctx::SeqItem);
                }
            }
            Value::Map(_) => self.indicator("{}", true, false, false),
            Value::Seq(_) => self.indicator("[]", true, false, false),
            Value::Null => self.plain("null", indent, false),
            Value::Bool(b) => self.plain(if *b { "true" } else { "false" }, indent, false),
            Value::Int(i) => self.plain(&i.to_string(), indent, false),
            Value::Float(f) => self.plain(&format_go_g(*f), indent, false),
            Value::Str(s) => self.scalar_str(s, indent, false),
        }
    }

    fn plain(&mut self, s: &str, indent: usize, simple_key: bool) {
        self.write_plain(s, indent + INDENT, !simple_key);
    }

    /// A string scalar, styled as go-yaml v2 styles strings.
    fn scalar_str(&mut self, s: &str, indent: usize, simple_key: bool) {
        let a = analyze(s);
        let mut style = if s.contains('\n') {
            Style::Literal
        } else if v2_plain_is_string(s) {
            Style::Plain
        } else {
            Style::Double
        };
        if s.is_empty() {
            style = Style::Double;
        }
        if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && simple_key)) {
            style = Style::Single;
        }
        if style == Style::Plain && simple_key && a.multiline {
            style = Style::Double;
        }
        if style == Style::Single && !a.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block_allowed || simple_key) {
            style = Style::Double;
        }
        let ind = if simple_key { indent } else { indent + INDENT };
        match style {
            Style::Plain => self.write_plain(s, ind, !simple_key),
            Style::Single => self.write_single(s, ind, !simple_key),
            Style::Double => self.write_double(s, ind, !simple_key),
            Style::Literal => self.write_literal(s, ind),
        }
    }

    fn write_plain(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        if !self.whitespace {
            self.put_char(' ');
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(indent);
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                self.put_char(c);
                spaces = false;
            }
            self.indention = false;
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        self.indicator("'", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        let last = chars.len().saturating_sub(1);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != last
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(indent);
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put_char('\'');
                }
                self.put_char(c);
                spaces = false;
            }
            self.indention = false;
        }
        self.indicator("'", false, false, false);
    }

    fn write_double(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        self.indicator("\"", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        let last = chars.len().saturating_sub(1);
        // libyaml's BOM test looks at the start of the string whatever the position, so a
        // string starting with a BOM has every character escaped.
        let bom = s.starts_with('\u{FEFF}');
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if bom || !is_printable(c) || is_break(c) || c == '"' || c == '\\' {
                self.put_char('\\');
                match c {
                    '\0' => self.put_char('0'),
                    '\u{7}' => self.put_char('a'),
                    '\u{8}' => self.put_char('b'),
                    '\t' => self.put_char('t'),
                    '\n' => self.put_char('n'),
                    '\u{b}' => self.put_char('v'),
                    '\u{c}' => self.put_char('f'),
                    '\r' => self.put_char('r'),
                    '\u{1b}' => self.put_char('e'),
                    '"' => self.put_char('"'),
                    '\\' => self.put_char('\\'),
                    '\u{85}' => self.put_char('N'),
                    '\u{a0}' => self.put_char('_'),
                    '\u{2028}' => self.put_char('L'),
                    '\u{2029}' => self.put_char('P'),
                    c if (c as u32) <= 0xFF => self.put(&format!("x{:02X}", c as u32)),
                    c if (c as u32) <= 0xFFFF => self.put(&format!("u{:04X}", c as u32)),
                    c => self.put(&format!("U{:08X}", c as u32)),
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i != 0 && i != last {
                    self.write_indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put_char('\\');
                    }
                } else {
                    self.put_char(c);
                }
                spaces = true;
            } else {
                self.put_char(c);
                spaces = false;
            }
            self.indention = false;
            i += 1;
        }
        self.indicator("\"", false, false, false);
    }

    fn write_literal(&mut self, s: &str, indent: usize) {
        self.indicator("|", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.put(&INDENT.to_string());
        }
        let n = chars.len();
        if n > 0 && !is_break(chars[n - 1]) {
            self.put("-");
        } else if n == 1 || (n >= 2 && is_break(chars[n - 2])) {
            self.put("+");
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.put_break();
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(indent);
                    breaks = false;
                }
                self.put_char(c);
                self.indention = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_documents};

    fn roundtrip(s: &str) -> String {
        let docs = parse_documents(s, Limits::default()).expect("parses");
        to_yaml(docs[0].as_ref().expect("doc")).expect("prints")
    }

    #[test]
    fn keys_sort_and_sequences_sit_under_their_key() {
        assert_eq!(
            roundtrip("b: [1, 2]\na: {z: x, y: x}\n"),
            "a:\n  \"y\": x\n  z: x\nb:\n- 1\n- 2\n"
        );
    }

    #[test]
    fn strings_that_read_as_other_types_are_double_quoted() {
        assert_eq!(
            roundtrip("a: 'on'\nb: '1'\nc: ''\nd: '- x'\n"),
            "a: \"on\"\nb: \"1\"\nc: \"\"\nd: '- x'\n"
        );
    }

    #[test]
    fn multi_line_strings_become_literal_blocks() {
        assert_eq!(
            roundtrip("a: \"x\\ny\"\nb: \"x\\n\"\n"),
            "a: |-\n  x\n  y\nb: |\n  x\n"
        );
    }

    #[test]
    fn v2_key_order_puts_numbers_in_numeric_order() {
        assert_eq!(v2_key_cmp("a9", "a10"), Ordering::Less);
        assert_eq!(v2_key_cmp("a_b", "aB"), Ordering::Less);
    }
}
