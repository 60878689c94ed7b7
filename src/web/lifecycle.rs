//! Page lifecycle listeners: online, offline and visibility. Removed when dropped.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use web_sys::EventTarget;

/// What the page reports.
#[derive(Clone, Copy)]
pub enum PageEvent {
    Online,
    Offline,
    Visible,
}

type Listener = (EventTarget, &'static str, Closure<dyn FnMut(JsValue)>);

pub struct Lifecycle {
    listeners: Vec<Listener>,
}

impl Lifecycle {
    /// Listens on `window` and `document` when there are such (not in a worker).
    pub fn listen(report: impl Fn(PageEvent) + Clone + 'static) -> Lifecycle {
        let mut listeners = Vec::new();
        let Some(window) = web_sys::window() else { return Lifecycle { listeners } };
        let document = window.document();
        let mut add = |target: &EventTarget, name: &'static str, f: Closure<dyn FnMut(JsValue)>| {
            if target.add_event_listener_with_callback(name, f.as_ref().unchecked_ref()).is_ok() {
                listeners.push((target.clone(), name, f));
            }
        };
        let r = report.clone();
        add(&window, "online", Closure::new(move |_| r(PageEvent::Online)));
        let r = report.clone();
        add(&window, "offline", Closure::new(move |_| r(PageEvent::Offline)));
        if let Some(doc) = document {
            let d = doc.clone();
            let r = report;
            add(
                &doc,
                "visibilitychange",
                Closure::new(move |_| {
                    if d.visibility_state() == web_sys::VisibilityState::Visible {
                        r(PageEvent::Visible)
                    }
                }),
            );
        }
        Lifecycle { listeners }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        for (target, name, f) in self.listeners.drain(..) {
            let _ = target.remove_event_listener_with_callback(name, f.as_ref().unchecked_ref());
        }
    }
}
