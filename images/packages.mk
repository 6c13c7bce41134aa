# Included by the image Makefiles: `packages` installs the Debian packages in $(PACKAGES)
# that are missing.  Checked every run (cheap), installed only if missing (the status of
# each, as `dpkg -s` shows it; removed-but-configured counts as missing).
packages:
	@missing=""; \
	for p in $(PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi
