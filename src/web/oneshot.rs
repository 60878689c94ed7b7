//! A one-value channel for the Rust API's futures: the driver fills it when the core settles a
//! frame's reply, and the awaiting future wakes. No JS promise on the way, so the core's
//! [`crate::core::Error`] arrives whole (its close code and frame id included).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    /// The sender is gone: no value will come.
    done: bool,
    waker: Option<Waker>,
}

pub(crate) struct Sender<T>(Rc<RefCell<Slot<T>>>);
pub(crate) struct Receiver<T>(Rc<RefCell<Slot<T>>>);

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Rc::new(RefCell::new(Slot { value: None, done: false, waker: None }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    pub(crate) fn send(self, value: T) {
        if let Ok(mut slot) = self.0.try_borrow_mut() {
            slot.value = Some(value);
        }
        // Dropping `self` marks the slot done and wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = self.0.try_borrow_mut().ok().and_then(|mut slot| {
            slot.done = true;
            slot.waker.take()
        });
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Resolves with the value, or `None` when the sender was dropped without one.
impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Ok(mut slot) = self.0.try_borrow_mut() else { return Poll::Pending };
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.done {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
