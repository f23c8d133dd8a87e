# mailpit_py's container image: the wheel with its PostgreSQL extra on a slim Python, run as a
# user without privileges. Build from the repository root: docker build -t mailpit-py .
# (docs/deploy.md: how to run it alone, with deploy/compose.yaml or on Kubernetes.)

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY mailpit_py ./mailpit_py
COPY web ./web
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it and volumes can be chowned to it.
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home mailpit
COPY --from=build /dist /dist
RUN pip install --no-cache-dir "$(ls /dist/mailpit_py-*.whl)[postgres]" && rm -rf /dist

# Every interface of the container over IPv4 (a container may have no IPv6: binding [::], the
# default, would then fail); messages kept in the /data volume unless MP_DATABASE names a
# PostgreSQL URL; logs as one JSON object per line for log collectors. Defaults are variables,
# never flags in CMD: a flag would silently win over the same MP_* variable set at run time.
ENV MP_SMTP_BIND_ADDR=0.0.0.0:1025 \
    MP_UI_BIND_ADDR=0.0.0.0:8025 \
    MP_DATABASE=/data/mailpit.db \
    MP_LOG_FORMAT=json \
    MP_MAX_MESSAGES=500 \
    MP_SMTP_HOSTNAME=mailpit
VOLUME /data
WORKDIR /data
USER 10001:10001
EXPOSE 1025 8025
# readyz reads MP_UI_BIND_ADDR and MP_WEBROOT to find the instance: 0 once SMTP, the database
# and HTTP all work.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["mailpit-py", "readyz"]
ENTRYPOINT ["mailpit-py"]
CMD []
