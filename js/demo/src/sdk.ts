// The SDK alone on a page, for the browser tests (js/tests/): init and Client on window.resock.
import init, { Client } from "resock";

declare global {
  interface Window {
    resock: { init: typeof init; Client: typeof Client };
  }
}
window.resock = { init, Client };
