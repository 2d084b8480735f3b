//! The node tree every transformer works on.

/// How a scalar's type is decided when it is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// An untagged scalar (as kyaml creates them): its type comes from its text, by the YAML
    /// 1.2 core rules of go-yaml v3.
    Implicit,
    /// A string whatever its text looks like (quoted, block scalar, or `!!str`).
    Str,
    /// Explicitly `!!int`.
    Int,
    /// Explicitly `!!float`.
    Float,
    /// Explicitly `!!bool`.
    Bool,
    /// Explicitly `!!null`.
    Null,
    /// A plain scalar go-yaml read as `!!timestamp`.
    Timestamp,
}

/// A scalar: its text after escape processing and how its type is decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub value: String,
    pub tag: Tag,
    /// Written quoted (or as a block scalar): kyaml's setters keep that style for new text.
    pub quoted: bool,
}

/// A YAML node. Mapping keys are kept as text, in document order.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A string scalar (printed quoted when its text would read as another type).
    pub fn str(s: impl Into<String>) -> Node {
        Node::Scalar(Scalar {
            value: s.into(),
            tag: Tag::Str,
            quoted: true,
        })
    }

    /// A plain scalar whose type is decided by its text, as kyaml's `NewScalarRNode` makes.
    pub fn plain(s: impl Into<String>) -> Node {
        Node::Scalar(Scalar {
            value: s.into(),
            tag: Tag::Implicit,
            quoted: false,
        })
    }

    pub fn null() -> Node {
        Node::Scalar(Scalar {
            value: "null".into(),
            tag: Tag::Null,
            quoted: false,
        })
    }

    pub fn int(i: i64) -> Node {
        Node::Scalar(Scalar {
            value: i.to_string(),
            tag: Tag::Int,
            quoted: false,
        })
    }

    pub fn map() -> Node {
        Node::Map(Vec::new())
    }

    pub fn is_null(&self) -> bool {
        match self {
            Node::Scalar(s) => match s.tag {
                Tag::Null => true,
                Tag::Implicit => matches!(s.value.as_str(), "" | "~" | "null" | "Null" | "NULL"),
                _ => false,
            },
            _ => false,
        }
    }

    pub fn as_map(&self) -> Option<&Vec<(String, Node)>> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(String, Node)>> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&Vec<Node>> {
        match self {
            Node::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_seq_mut(&mut self) -> Option<&mut Vec<Node>> {
        match self {
            Node::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar (any tag); `None` for collections.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) => Some(&s.value),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The value at a path of mapping keys.
    pub fn get_path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, k| n.get(k))
    }

    /// The text of the scalar at a path, if it is a non-null scalar.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        let n = self.get_path(path)?;
        if n.is_null() { None } else { n.as_str() }
    }

    /// Sets `key` (replacing in place, or appending). A no-op on non-maps.
    pub fn set(&mut self, key: &str, value: Node) {
        if let Node::Map(m) = self {
            if let Some(slot) = m.iter_mut().find(|(k, _)| k == key) {
                slot.1 = value;
            } else {
                m.push((key.to_string(), value));
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let m = self.as_map_mut()?;
        let i = m.iter().position(|(k, _)| k == key)?;
        Some(m.remove(i).1)
    }

    /// The mapping at `key`, created (or replacing a null) when missing. `None` if a non-map
    /// value is in the way.
    pub fn entry_map(&mut self, key: &str) -> Option<&mut Node> {
        let m = self.as_map_mut()?;
        let i = match m.iter().position(|(k, _)| k == key) {
            Some(i) => {
                if m[i].1.is_null() {
                    m[i].1 = Node::map();
                }
                i
            }
            None => {
                m.push((key.to_string(), Node::map()));
                m.len() - 1
            }
        };
        let v = &mut m[i].1;
        if matches!(v, Node::Map(_)) {
            Some(v)
        } else {
            None
        }
    }

    /// Number of nodes in this tree (used to bound alias expansion).
    pub fn weight(&self) -> usize {
        match self {
            Node::Scalar(_) => 1,
            Node::Seq(s) => 1 + s.iter().map(Node::weight).sum::<usize>(),
            Node::Map(m) => 1 + m.iter().map(|(_, v)| 1 + v.weight()).sum::<usize>(),
        }
    }
}
