// comfy-papa frontend extension: registers with the ComfyUI app.
import { app } from "../../scripts/app.js";

app.registerExtension({
  name: "comfy_papa.core",
  async setup() {
    window.comfyPapa = { version: "0.1.0" };
  },
});
