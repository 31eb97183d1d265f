# The model's parameters: one `model` variable shaped like simrec.core.params.ModelParams'
# JSON (what `simrec tune` and the manifests print). Its defaults and bounds are not written
# here: terraform/model.json is generated from simrec (python -m simrec.deploy_contract
# --write), so an attribute left out takes simrec's default and a value out of simrec's
# bounds fails the plan (output "model"). tests/test_terraform.py checks the attribute names
# against ModelParams.

variable "model" {
  description = "Model parameters, as simrec.core.params.ModelParams' JSON (docs/deploy.md; the attributes are the names in model.json, weights as weights { browsed, basket, purchase }). Leave an attribute out for simrec's default."
  # Any object: the attribute names, like the defaults and bounds, come from model.json, and
  # a name it does not know fails the plan (a typed object would drop it silently).
  type     = any
  default  = {}
  nullable = false
}

locals {
  # Default, bounds and plan-time message of each model setting, keyed by its
  # simrec.config.Settings name (weights become weight_<action>).
  model_rules = jsondecode(file("${path.module}/model.json"))

  # var.model flattened to the settings' names; a top-level weight_* is not one of them.
  model_weights = lookup(var.model, "weights", {})
  model_given = merge(
    { for action, weight in local.model_weights : "weight_${action}" => weight },
    { for name, value in var.model : name => value if name != "weights" && !startswith(name, "weight_") },
  )
  model_set = {
    for name, value in local.model_given : name => value
    if value != null && contains(keys(local.model_rules), name)
  }
  model_unknown = concat(
    [for name in keys(var.model) : name if name != "weights" && !contains(keys(local.model_set), name) && lookup(var.model, name) != null],
    [for action in keys(local.model_weights) : "weights.${action}" if !contains(keys(local.model_rules), "weight_${action}")],
  )

  # Terraform evaluates both sides of && and ||, so each bound is guarded by a conditional.
  model_problems = concat([for name in local.model_unknown : "${name} is no model parameter"], [
    for name, value in local.model_set : "${name} must be ${local.model_rules[name].rule}, got ${value}" if !(
      local.model_rules[name].choices != null ? contains(local.model_rules[name].choices, value) : alltrue([
        local.model_rules[name].ge == null ? true : value >= local.model_rules[name].ge,
        local.model_rules[name].gt == null ? true : value > local.model_rules[name].gt,
        local.model_rules[name].le == null ? true : value <= local.model_rules[name].le,
        local.model_rules[name].whole ? floor(value) == value : true,
      ])
    )
  ])

  # Every model setting, given or simrec's default, as the SIMREC_* variables Settings reads.
  model_env = {
    for name, rule in local.model_rules :
    "SIMREC_${upper(name)}" => tostring(lookup(local.model_set, name, rule.default))
  }
}

output "model" {
  description = "The model parameters the nightly run trains with (simrec's default where model leaves one out)."
  value       = { for env, value in local.model_env : lower(trimprefix(env, "SIMREC_")) => value }

  precondition {
    condition     = length(local.model_problems) == 0
    error_message = "model: ${join("; ", local.model_problems)}."
  }
}
