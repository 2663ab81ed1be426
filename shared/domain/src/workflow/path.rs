//! JSON paths of places in a workflow document (`$.steps[2].agent_id`), built only when an
//! error needs one, as a chain of segments on the stack.

#[derive(Clone, Copy)]
pub(super) enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

#[derive(Clone, Copy)]
pub(super) struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    seg: Seg<'a>,
}

pub(super) const ROOT: Loc<'static> = Loc { parent: None, seg: Seg::Root };

impl<'a> Loc<'a> {
    pub(super) fn key(&'a self, key: &'a str) -> Loc<'a> {
        Loc { parent: Some(self), seg: Seg::Key(key) }
    }

    pub(super) fn index(&'a self, index: usize) -> Loc<'a> {
        Loc { parent: Some(self), seg: Seg::Index(index) }
    }

    pub(super) fn render(&self) -> String {
        let mut segs = vec![self.seg];
        let mut at = self.parent;
        while let Some(loc) = at {
            segs.push(loc.seg);
            at = loc.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => out.push('$'),
                Seg::Key(key) if is_plain_key(key) => {
                    out.push('.');
                    out.push_str(key);
                }
                // Keys that are not identifiers use the bracket form with a JSON string.
                Seg::Key(key) => {
                    out.push('[');
                    out.push_str(&serde_json::to_string(key).unwrap_or_default());
                    out.push(']');
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

fn is_plain_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The JSON path of `defaults.targets.<step id>`.
pub(super) fn default_target_path(step_id: &str) -> String {
    ROOT.key("defaults").key("targets").key(step_id).render()
}
