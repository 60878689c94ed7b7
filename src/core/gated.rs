//! A part of the machine behind a Cargo feature (`share`, `sse`): an `Option` that a build
//! without the feature knows to be empty. Every branch that uses the part then folds away at
//! compile time, so the lean package (`--no-default-features`) carries none of its code while the
//! machine itself is written once (issue 11, docs/SIZE.md).

/// Cross-tab sharing is compiled in (`core::share`).
pub(crate) const SHARE: bool = cfg!(feature = "share");
/// The SSE fallback is compiled in (`core::transport`).
pub(crate) const SSE: bool = cfg!(feature = "sse");

/// `Some` only when `ON` (a feature constant above) is true. Held in a `ManuallyDrop` and
/// dropped by hand only when `ON`: a build without the feature then keeps none of `T`'s drop
/// code (the lean build's driver held the sharing and SSE handles' drops, and their imports).
pub(crate) struct Gated<T, const ON: bool>(core::mem::ManuallyDrop<Option<T>>);

impl<T, const ON: bool> Drop for Gated<T, ON> {
    fn drop(&mut self) {
        if ON {
            drop(Option::take(&mut self.0));
        }
    }
}

impl<T, const ON: bool> Gated<T, ON> {
    /// `value`, or nothing in a build without the feature.
    pub(crate) fn new(value: Option<T>) -> Self {
        Gated(core::mem::ManuallyDrop::new(if ON { value } else { None }))
    }

    #[inline(always)]
    pub(crate) fn as_ref(&self) -> Option<&T> {
        if ON {
            self.0.as_ref()
        } else {
            None
        }
    }

    #[inline(always)]
    pub(crate) fn as_mut(&mut self) -> Option<&mut T> {
        if ON {
            self.0.as_mut()
        } else {
            None
        }
    }

    #[inline(always)]
    pub(crate) fn is_some(&self) -> bool {
        self.as_ref().is_some()
    }

    #[cfg_attr(test, allow(dead_code))] // the shell's (web/driver.rs)
    #[inline(always)]
    pub(crate) fn is_none(&self) -> bool {
        self.as_ref().is_none()
    }

    #[cfg_attr(test, allow(dead_code))] // the shell's (web/driver.rs)
    /// Takes the value out, leaving nothing.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> Option<T> {
        if ON {
            self.0.take()
        } else {
            None
        }
    }

    #[cfg_attr(test, allow(dead_code))] // the shell's (web/driver.rs)
    /// Puts `value` in (dropped at once without the feature), returning the old one.
    pub(crate) fn replace(&mut self, value: T) -> Option<T> {
        if ON {
            self.0.replace(value)
        } else {
            None
        }
    }
}
