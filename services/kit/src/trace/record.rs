//! What a span records: its kind, its attributes, and the finished record the exporter writes
//! out.

use std::borrow::Cow;

use super::context::SpanContext;

/// What a span stands for (OpenTelemetry's span kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Internal,
    /// Serving a call: an HTTP request or a gRPC call.
    Server,
    /// Calling out: a gRPC call, a Redis script, an SQL statement.
    Client,
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(&'static str),
    String(String),
    I64(i64),
    Bool(bool),
}

impl From<&'static str> for Value {
    fn from(value: &'static str) -> Self {
        Self::Str(value)
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::I64(value)
    }
}

impl From<u16> for Value {
    fn from(value: u16) -> Self {
        Self::I64(value.into())
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Self::I64(value.into())
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// Attributes fixed where the span is written (`db.system`, …): recorded without a copy.
pub type Fixed = &'static [(&'static str, &'static str)];

/// Attributes set while a span runs: a few, kept inline (the layers set two at most), so
/// recording one allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Attributes {
    items: [Option<(&'static str, Value)>; 4],
}

impl Attributes {
    /// Adds one; past the capacity it is dropped.
    pub(crate) fn push(&mut self, key: &'static str, value: Value) {
        if let Some(slot) = self.items.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some((key, value));
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(&'static str, Value)> {
        self.items.iter().flatten()
    }
}

/// One span as recorded, for the exporter.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub(crate) context: SpanContext,
    /// The parent's span id and whether it is in another process.
    pub(crate) parent: Option<(u64, bool)>,
    pub(crate) kind: Kind,
    pub(crate) name: Cow<'static, str>,
    pub(crate) start_unix_nanos: u64,
    pub(crate) end_unix_nanos: u64,
    pub(crate) fixed: Fixed,
    pub(crate) attributes: Attributes,
    /// Set when the work failed: the status description.
    pub(crate) error: Option<Cow<'static, str>>,
}

#[cfg(test)]
impl Recorded {
    /// A finished span, as the exporter gets it (start 10, end 20).
    pub(crate) fn for_test(
        context: SpanContext,
        parent: Option<(u64, bool)>,
        kind: Kind,
        name: &'static str,
        fixed: Fixed,
        attributes: &[(&'static str, Value)],
        error: Option<&'static str>,
    ) -> Self {
        let mut recorded = Self {
            context,
            parent,
            kind,
            name: name.into(),
            start_unix_nanos: 10,
            end_unix_nanos: 20,
            fixed,
            attributes: Attributes::default(),
            error: error.map(Into::into),
        };
        for (key, value) in attributes {
            recorded.attributes.push(key, value.clone());
        }
        recorded
    }
}
