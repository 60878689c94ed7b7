//! Page lifecycle listeners: online, offline and visibility. Removed when dropped.
//!
//! The listeners themselves are `resock_lifecycle` in `src/web/fast.js` (three
//! `addEventListener`s on `window` and `document` and their removal); here one closure gets what
//! happened. Bindings for `window`, `document`, their listeners and `visibilityState` weighed
//! more in the package than that helper (issue 11, docs/SIZE.md).

use js_sys::Function;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

#[wasm_bindgen(module = "/src/web/fast.js")]
extern "C" {
    fn resock_lifecycle(report: &Closure<dyn FnMut(JsValue)>) -> Function;
}

/// What the page reports.
#[derive(Clone, Copy)]
pub enum PageEvent {
    Online,
    Offline,
    Visible,
}

pub struct Lifecycle {
    /// Removes the listeners (a no-op without a page, e.g. in a worker).
    stop: Function,
    _report: Closure<dyn FnMut(JsValue)>,
}

impl Lifecycle {
    /// Listens on `window` and `document` when there are such (not in a worker).
    pub fn listen(report: impl Fn(PageEvent) + 'static) -> Lifecycle {
        let f = Closure::<dyn FnMut(JsValue)>::new(move |what: JsValue| {
            // 0 online, 1 offline, 2 the page became visible (fast.js).
            let event = match what.as_f64().map(|n| n as u8) {
                Some(0) => PageEvent::Online,
                Some(1) => PageEvent::Offline,
                _ => PageEvent::Visible,
            };
            report(event);
        });
        Lifecycle { stop: resock_lifecycle(&f), _report: f }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        let _ = self.stop.call0(&JsValue::NULL);
    }
}
