//! Integrations, as small ids: one per bearer token (each PBX or IVR that
//! calls the bridge), and one shared bucket when tokens are off. Signal trust
//! is learned per integration, so one PBX that signals does not make the
//! bridge go blind for another that does not.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The bucket of every caller when `http.api_tokens` is empty.
pub const SHARED: &str = "shared";
/// Names beyond this many share one id (and one metric label), so a long
/// history of rotated tokens cannot grow the label set without bound.
const MAX_NAMED: usize = 64;
const OVERFLOW: &str = "other";

/// Index into [`Integrations`]; two bytes in every tracked transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IntegrationId(u16);

impl IntegrationId {
    /// The shared bucket (always index 0).
    pub const SHARED: Self = Self(0);

    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Interned integration names; cheap to share.
#[derive(Debug)]
pub struct Integrations {
    inner: RwLock<Names>,
}

#[derive(Debug)]
struct Names {
    by_name: HashMap<Arc<str>, IntegrationId>,
    names: Vec<Arc<str>>,
}

impl Integrations {
    pub fn new() -> Arc<Self> {
        let shared: Arc<str> = Arc::from(SHARED);
        let names = Names {
            by_name: HashMap::from([(shared.clone(), IntegrationId::SHARED)]),
            names: vec![shared],
        };
        Arc::new(Self {
            inner: RwLock::new(names),
        })
    }

    /// The id of `name`, interning it on first use. `None` is the shared bucket.
    pub fn id(&self, name: Option<&str>) -> IntegrationId {
        let name = name.unwrap_or(SHARED);
        if let Some(id) = self.read().by_name.get(name) {
            return *id;
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = inner.by_name.get(name) {
            return *id;
        }
        let name = match inner.names.len() >= MAX_NAMED {
            true => OVERFLOW,
            false => name,
        };
        if let Some(id) = inner.by_name.get(name) {
            return *id; // the overflow bucket, already named
        }
        let id = IntegrationId(u16::try_from(inner.names.len()).unwrap_or(u16::MAX));
        let name: Arc<str> = Arc::from(name);
        inner.names.push(name.clone());
        inner.by_name.insert(name, id);
        id
    }

    /// The name of `id`: the metric label of its signal share.
    pub fn name(&self, id: IntegrationId) -> Arc<str> {
        let inner = self.read();
        inner
            .names
            .get(id.index())
            .cloned()
            .unwrap_or_else(|| inner.names[0].clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Names> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_intern_once_and_overflow_into_one_bucket() {
        let all = Integrations::new();
        assert_eq!(all.id(None), IntegrationId::SHARED);
        let a = all.id(Some("tok-a"));
        assert_eq!(all.id(Some("tok-a")), a);
        assert_ne!(a, IntegrationId::SHARED);
        assert_eq!(&*all.name(a), "tok-a");
        for n in 0..200 {
            all.id(Some(&format!("tok-{n}")));
        }
        let late = all.id(Some("tok-late"));
        assert_eq!(&*all.name(late), OVERFLOW);
        assert_eq!(all.id(Some("tok-later")), late);
        assert!(all.read().names.len() <= MAX_NAMED + 1);
    }
}
