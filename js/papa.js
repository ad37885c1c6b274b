// comfy-papa frontend extension: registers with the ComfyUI app.
import { app } from "../../scripts/app.js";

// PAPA Fine-tune's widgets before its finer settings moved to PAPA Training Options, in the
// order a saved workflow lists their values (13 values before c_anchor existed, then 14).
const OLD_FINETUNE_WIDGETS = [
  "method",
  "cut",
  "steps",
  "learning_rate",
  "rank",
  "alpha",
  "c_pref",
  "c_sim",
  "batch_size",
  "timesteps_per_sample",
  "seed",
  "control_after_generate",
  "gradient_checkpointing",
  "c_anchor",
];
const KEPT = new Set(["method", "steps", "seed", "control_after_generate"]);
const optionDefaults = {}; // PAPA Training Options' inputs and their defaults, from its node def

/** The old layout's values by widget name, or null when `values` is the current layout. */
function oldFinetuneValues(values) {
  if (!Array.isArray(values) || (values.length !== 13 && values.length !== 14)) return null;
  const byName = Object.fromEntries(OLD_FINETUNE_WIDGETS.map((n, i) => [n, values[i]]));
  const looksOld =
    ["PAPA", "EPAPA"].includes(byName.method) &&
    typeof byName.cut === "number" &&
    typeof byName.control_after_generate === "string" &&
    typeof byName.gradient_checkpointing === "boolean";
  return looksOld ? byName : null;
}

/** A workflow saved with the old PAPA Fine-tune (15 widgets): method, steps and seed go back to
 * their widgets (the frontend assigns saved values by position), the moved settings' leftover
 * input slots go, and the settings that differ from the defaults are remembered for a PAPA
 * Training Options node (made once the graph has loaded, see loadedGraphNode). */
function migrateFinetune(node, info) {
  const old = oldFinetuneValues(info.widgets_values);
  if (!old) return;
  for (const w of node.widgets ?? []) {
    if (KEPT.has(w.name)) w.value = old[w.name];
  }
  for (let i = (node.inputs?.length ?? 0) - 1; i >= 0; i--) {
    const name = node.inputs[i].name;
    if (OLD_FINETUNE_WIDGETS.includes(name) && !KEPT.has(name)) node.removeInput(i);
  }
  node.setSize([node.size[0], node.computeSize()[1]]);
  const moved = {};
  for (const [name, value] of Object.entries(old)) {
    if (KEPT.has(name) || value === undefined) continue;
    if (name in optionDefaults && optionDefaults[name] !== value) moved[name] = value;
  }
  node.papaMovedOptions = moved;
}

function addOptionsNode(node) {
  const moved = node.papaMovedOptions;
  delete node.papaMovedOptions;
  if (!moved || !Object.keys(moved).length) return;
  const opts = LiteGraph.createNode("PAPATrainingOptions");
  if (!opts) return;
  opts.pos = [node.pos[0], node.pos[1] + node.size[1] + 50]; // below the Fine-tune node
  node.graph.add(opts);
  for (const w of opts.widgets ?? []) {
    if (w.name in moved) w.value = moved[w.name];
  }
  opts.connect(0, node, node.findInputSlot("options"));
  app.extensionManager?.toast?.add({
    severity: "info",
    summary: "PAPA Fine-tune: settings moved",
    detail:
      "This workflow was saved with an older PAPA Fine-tune. Its changed training settings " +
      `(${Object.keys(moved).join(", ")}) are now on the PAPA Training Options node below it.`,
    life: 8000,
  });
}

app.registerExtension({
  name: "comfy_papa.core",
  async setup() {
    window.comfyPapa = { version: "0.1.0" };
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name === "PAPATrainingOptions") {
      const inputs = { ...nodeData.input?.required, ...nodeData.input?.optional };
      for (const [name, spec] of Object.entries(inputs)) optionDefaults[name] = spec?.[1]?.default;
    }
    if (nodeData.name === "PAPAFineTune") {
      const onConfigure = nodeType.prototype.onConfigure;
      nodeType.prototype.onConfigure = function (info) {
        const r = onConfigure?.apply(this, arguments);
        migrateFinetune(this, info);
        return r;
      };
    }
  },
  loadedGraphNode(node) {
    if (node.papaMovedOptions) addOptionsNode(node);
  },
});
