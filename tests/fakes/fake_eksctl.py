"""Default behaviour of the fake ``eksctl`` (modelled on eksctl 0.230.0; stdlib only, python3 >= 3.7).

Emulated: ``version``, ``create cluster``, ``delete cluster``, ``get cluster``,
``create iamserviceaccount``, ``get iamserviceaccount``, ``utils write-kubeconfig`` and
``utils associate-iam-oidc-provider``. Log lines look like eksctl's
(``2026-01-02 10:00:00 [ℹ]  ...`` on stdout), failures are ``Error: ...`` on stderr, exit 1.
Clusters, OIDC association and IAM service accounts persist in the shared state file (see
fakecore), so ``get cluster`` lists what ``create cluster`` made, a second ``create cluster``
fails like CloudFormation's AlreadyExists, and ``create iamserviceaccount`` needs OIDC first.

Kubeconfig: written (JSON, which kubectl and PyYAML read) only to ``--kubeconfig PATH`` or to
the first entry of ``$KUBECONFIG``; never to ~/.kube/config. With ``FAKE_EKSCTL_KUBE_SERVER``
set, the kubeconfig points at that server with a static token (``FAKE_EKSCTL_KUBE_TOKEN``,
default ``fake-eks-token``) and ``FAKE_EKSCTL_KUBE_CA_FILE`` as CA (else, for https,
insecure-skip-tls-verify), so kubectl can reach an emulator; without it the kubeconfig is
eksctl's own shape (exec ``aws eks get-token``).

Other real eksctl commands exit 97 with a message (not emulated).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import os
import re
import uuid

import miniyaml

VERSION = "0.230.0"
DEFAULT_K8S_VERSION = "1.34"
SUPPORTED_K8S = ["1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34"]
NOT_EMULATED_EXIT = 97
_UTC = _dt.timezone.utc  # noqa: UP017 - datetime.UTC needs python 3.11; the fakes run on any python3

VALUE_FLAGS = {
    "config-file",
    "name",
    "region",
    "cluster",
    "namespace",
    "kubeconfig",
    "version",
    "profile",
    "output",
    "attach-policy-arn",
    "attach-role-arn",
    "role-name",
    "node-type",
    "nodes",
    "nodes-min",
    "nodes-max",
    "zones",
    "tags",
    "timeout",
    "nodegroup-name",
    "node-ami-family",
    "node-volume-size",
    "max-pods-per-node",
    "ssh-public-key",
    "instance-types",
    "verbose",
    "color",
    "include",
    "exclude",
    "parallel",
    "vpc-private-subnets",
    "vpc-public-subnets",
    "vpc-cidr",
    "cfn-role-arn",
    "permissions-boundary",
    "instance-prefix",
    "instance-name",
    "node-labels",
    "node-zones",
    "node-volume-type",
    "chunk-size",
    "service-account",
    "authenticator-role-arn",
    "kubeconfig-path",
    "attach-policy",
    "role-arn",
}
BOOL_FLAGS = {
    "approve",
    "wait",
    "force",
    "dry-run",
    "managed",
    "without-nodegroup",
    "with-oidc",
    "role-only",
    "override-existing-serviceaccounts",
    "auto-kubeconfig",
    "set-kubeconfig-context",
    "write-kubeconfig",
    "disable-pod-imds",
    "all-regions",
    "install-nvidia-plugin",
    "install-neuron-plugin",
    "enable-ssm",
    "ssh-access",
    "fargate",
    "disable-nodegroup-eviction",
    "spot",
    "node-private-networking",
    "asg-access",
    "external-dns-access",
    "full-ecr-access",
    "appmesh-access",
    "alb-ingress-access",
    "only-missing",
    "help",
    "enable-auto-mode",
    "dump-logs",
}
SHORT = {
    "f": "config-file",
    "n": "name",
    "r": "region",
    "c": "cluster",
    "p": "profile",
    "o": "output",
    "v": "verbose",
    "C": "color",
    "w": "wait",
    "A": "all-regions",
    "h": "help",
    "t": "node-type",
    "N": "nodes",
    "m": "nodes-min",
    "M": "nodes-max",
}
REAL_VERBS = {
    "anywhere",
    "associate",
    "completion",
    "create",
    "delete",
    "deregister",
    "disassociate",
    "drain",
    "enable",
    "get",
    "help",
    "info",
    "register",
    "scale",
    "set",
    "unset",
    "update",
    "upgrade",
    "utils",
    "version",
}


class EksctlError(Exception):
    def __init__(self, message, code=1):
        Exception.__init__(self, message)
        self.code = code


# -- parsing ----------------------------------------------------------------------------------------


def parse_args(argv):
    """Lenient pflag-like parsing: (opts: name -> [values], positionals)."""
    opts = {}
    positionals = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positionals.extend(argv[i + 1 :])
            break
        if arg.startswith("--") or (arg.startswith("-") and len(arg) > 1):
            if arg.startswith("--"):
                name, eq, value = arg[2:].partition("=")
            else:
                name = SHORT.get(arg[1], arg[1])
                rest = arg[2:]
                eq = "=" if rest else ""
                value = rest[1:] if rest.startswith("=") else rest
            if eq:
                opts.setdefault(name, []).append(value)
            elif name in BOOL_FLAGS:
                opts.setdefault(name, []).append("true")
            elif name in VALUE_FLAGS or (i + 1 < len(argv) and not argv[i + 1].startswith("-")):
                if i + 1 >= len(argv):
                    raise EksctlError(f"flag needs an argument: --{name}")
                i += 1
                opts.setdefault(name, []).append(argv[i])
            else:
                opts.setdefault(name, []).append("true")
        else:
            positionals.append(arg)
        i += 1
    return opts, positionals


def _last(opts, name, default=None):
    values = opts.get(name)
    return values[-1] if values else default


def _on(opts, name, default=False):
    value = _last(opts, name)
    if value is None:
        return default
    return value.lower() in ("true", "1", "t")


# -- output -----------------------------------------------------------------------------------------


class Log:
    ICONS = {"info": "\u2139", "success": "\u2714", "warning": "!", "critical": "\u2716"}

    def __init__(self, ctx, to_stderr=False):
        self.ctx = ctx
        self.to_stderr = to_stderr

    def _emit(self, kind, message):
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp} [{self.ICONS[kind]}]  {message}\n"
        (self.ctx.err if self.to_stderr else self.ctx.out)(line)

    def info(self, message):
        self._emit("info", message)

    def success(self, message):
        self._emit("success", message)

    def warning(self, message):
        self._emit("warning", message)


def _not_found(name):
    return EksctlError(
        "unable to describe cluster control plane: operation error EKS: DescribeCluster, "
        f"https response error StatusCode: 404, RequestID: {uuid.uuid4()}, "
        f"ResourceNotFoundException: No cluster found for name: {name}."
    )


def _account():
    return os.environ.get("FAKE_EKSCTL_ACCOUNT_ID", "123456789012")


def _hexid(*parts):
    return hashlib.md5("/".join(parts).encode("utf-8")).hexdigest().upper()


# -- config -----------------------------------------------------------------------------------------


def load_config(path):
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        raise EksctlError(f'reading config file "{path}": open {path}: no such file or directory') from None
    try:
        data = miniyaml.loads(text)
    except ValueError as exc:
        raise EksctlError(f'loading config file "{path}": {exc}') from None
    if not isinstance(data, dict):
        raise EksctlError(f'loading config file "{path}": not a ClusterConfig')
    kind = data.get("kind")
    if kind != "ClusterConfig":
        raise EksctlError(f'loading config file "{path}": kind "{kind}" is not "ClusterConfig"')
    meta = data.get("metadata") or {}
    if not meta.get("name"):
        raise EksctlError("metadata.name must be set")
    return data


def _region(opts, config=None):
    if config is not None:
        region = (config.get("metadata") or {}).get("region")
        if region:
            return str(region)
    return (
        _last(opts, "region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-west-2"
    )


def _config_or_flags(opts, positionals, name_flags=("name",), forbid_with_file=("name", "region")):
    """(name, region, config) from -f FILE or flags/positional, eksctl-style conflicts checked."""
    path = _last(opts, "config-file")
    if path:
        for flag in forbid_with_file:
            if flag in opts:
                raise EksctlError(f"cannot use --{flag} when --config-file/-f is set")
        config = load_config(path)
        return str(config["metadata"]["name"]), _region(opts, config), config
    name = None
    for flag in name_flags:
        name = name or _last(opts, flag)
    if positionals:
        if name:
            raise EksctlError(
                f"--{name_flags[0]}={name} and argument {positionals[0]} cannot be used at the same time"
            )
        name = positionals[0]
    return name, _region(opts), None


# -- kubeconfig -------------------------------------------------------------------------------------


def _kubeconfig_target(opts):
    path = _last(opts, "kubeconfig")
    if path:
        return os.path.abspath(os.path.expanduser(path))
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return os.path.abspath(first) if first else None


def _upsert(items, entry):
    for index, item in enumerate(items):
        if item.get("name") == entry["name"]:
            items[index] = entry
            return
    items.append(entry)


def write_kubeconfig(path, cluster, set_context=True):
    name, region = cluster["name"], cluster["region"]
    cluster_name = f"{name}.{region}.eksctl.io"
    user_name = "{}@{}".format(os.environ.get("FAKE_EKSCTL_IAM_USER", "fake-user"), cluster_name)
    server = os.environ.get("FAKE_EKSCTL_KUBE_SERVER")
    if server:
        cluster_entry = {"server": server}
        ca_file = os.environ.get("FAKE_EKSCTL_KUBE_CA_FILE")
        if ca_file:
            cluster_entry["certificate-authority"] = ca_file
        elif server.startswith("https://"):
            cluster_entry["insecure-skip-tls-verify"] = True
        user_entry = {"token": os.environ.get("FAKE_EKSCTL_KUBE_TOKEN", "fake-eks-token")}
    else:
        cluster_entry = {"server": cluster["endpoint"], "certificate-authority-data": cluster["ca_data"]}
        user_entry = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["eks", "get-token", "--output", "json", "--cluster-name", name, "--region", region],
                "env": None,
                "interactiveMode": "IfAvailable",
                "provideClusterInfo": False,
            }
        }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [],
    }
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            try:
                existing = json.loads(text)
            except ValueError:
                existing = miniyaml.loads(text)
            if isinstance(existing, dict):
                config.update(existing)
                for key in ("clusters", "users", "contexts"):
                    config[key] = list(config.get(key) or [])
        except (OSError, ValueError):
            pass
    _upsert(config["clusters"], {"name": cluster_name, "cluster": cluster_entry})
    _upsert(config["users"], {"name": user_name, "user": user_entry})
    _upsert(config["contexts"], {"name": user_name, "context": {"cluster": cluster_name, "user": user_name}})
    if set_context or not config.get("current-context"):
        config["current-context"] = user_name
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# -- commands ---------------------------------------------------------------------------------------


def cmd_version(opts, positionals, ctx):
    if _last(opts, "output") == "json":
        ctx.out(
            json.dumps({"Version": VERSION, "EKSServerSupportedVersions": SUPPORTED_K8S}, indent=2) + "\n"
        )
    else:
        ctx.out(VERSION + "\n")
    return 0


def _nodegroups(opts, config):
    groups = []
    if config is not None:
        for key, managed in (("managedNodeGroups", True), ("nodeGroups", False)):
            for ng in config.get(key) or []:
                if isinstance(ng, dict) and ng.get("name"):
                    desired = str(ng.get("desiredCapacity") or ng.get("minSize") or "2")
                    groups.append(
                        {
                            "name": str(ng["name"]),
                            "desired": int(desired) if desired.isdigit() else 2,
                            "managed": managed,
                        }
                    )
        return groups
    if _on(opts, "without-nodegroup"):
        return groups
    name = _last(opts, "nodegroup-name") or f"ng-{_hexid(str(os.getpid()))[:8].lower()}"
    nodes = _last(opts, "nodes", "2")
    groups.append(
        {"name": name, "desired": int(nodes) if nodes.isdigit() else 2, "managed": _on(opts, "managed", True)}
    )
    return groups


def make_cluster(name, region, version=DEFAULT_K8S_VERSION, nodegroups=None, oidc=False, config_file=None):
    """The state record of a cluster (also used by the fake_tools fixture to seed clusters)."""
    hexid = _hexid(name, region)
    return {
        "name": name,
        "region": region,
        "version": version,
        "status": "ACTIVE",
        "arn": f"arn:aws:eks:{region}:{_account()}:cluster/{name}",
        "endpoint": f"https://{hexid}.gr7.{region}.eks.amazonaws.com",
        "oidc_issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{hexid}",
        "ca_data": base64.b64encode(
            b"-----BEGIN CERTIFICATE-----\nRkFLRS1FS1MtQ0E=\n-----END CERTIFICATE-----\n"
        ).decode("ascii"),
        "created_at": _dt.datetime.now(_UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "vpc_id": f"vpc-{hexid[:17].lower()}",
        "nodegroups": list(nodegroups or []),
        "oidc": bool(oidc),
        "iamserviceaccounts": {},
        "config_file": config_file,
    }


def cmd_create_cluster(opts, positionals, ctx):
    name, region, config = _config_or_flags(opts, positionals, forbid_with_file=("name", "region", "version"))
    log = Log(ctx)
    if config is None and not name:
        name = f"fake-cluster-{int(_dt.datetime.now().timestamp()) % 100000}"
    version = str(
        ((config or {}).get("metadata") or {}).get("version") or _last(opts, "version") or DEFAULT_K8S_VERSION
    )
    if _on(opts, "dry-run"):
        if config is not None:
            with open(_last(opts, "config-file"), encoding="utf-8") as fh:
                ctx.out(fh.read())
        else:
            ctx.out(
                "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n"
                f'  name: {name}\n  region: {region}\n  version: "{version}"\n'
            )
        return 0
    groups = _nodegroups(opts, config)
    with_oidc = bool(((config or {}).get("iam") or {}).get("withOIDC")) or _on(opts, "with-oidc")
    stack = f"eksctl-{name}-cluster"
    log.info(f"eksctl version {VERSION}")
    log.info(f"using region {region}")

    with ctx.state() as state:
        clusters = state.setdefault("eksctl", {}).setdefault("clusters", {})
        if name in clusters:
            log.info(f'building cluster stack "{stack}"')
            raise EksctlError(
                f'creating CloudFormation stack "{stack}": operation error CloudFormation: CreateStack, '
                f"https response error StatusCode: 400, RequestID: {uuid.uuid4()}, "
                f"AlreadyExistsException: Stack [{stack}] already exists"
            )
        cluster = make_cluster(name, region, version, groups, with_oidc, _last(opts, "config-file"))
        clusters[name] = cluster
    zones = [f"{region}{z}" for z in "abc"]

    log.info("setting availability zones to [{}]".format(" ".join(zones)))
    for i, zone in enumerate(zones):
        log.info(f"subnets for {zone} - public:192.168.{32 * i}.0/19 private:192.168.{96 + 32 * i}.0/19")
    for ng in groups:
        log.info('nodegroup "{}" will use "" [AmazonLinux2023/{}]'.format(ng["name"], version))
    log.info(f"using Kubernetes version {version}")
    managed = "managed" if all(ng["managed"] for ng in groups) else "un-managed"
    log.info(f'creating EKS cluster "{name}" in "{region}" region with {managed} nodes')
    if groups:
        log.info(
            "will create 2 separate CloudFormation stacks for cluster itself and the initial "
            f"{managed} nodegroup"
        )
    else:
        log.info("will create a CloudFormation stack for cluster itself and 0 managed nodegroup stack(s)")
    log.info(
        "if you encounter any issues, check CloudFormation console or try "
        f"'eksctl utils describe-stacks --region={region} --cluster={name}'"
    )
    log.info(
        "Kubernetes API endpoint access will use default of {publicAccess=true, privateAccess=false} "
        f'for cluster "{name}" in "{region}"'
    )
    log.info(f'CloudWatch logging will not be enabled for cluster "{name}" in "{region}"')
    log.info(
        "default addons metrics-server, vpc-cni, kube-proxy, coredns were not specified, "
        "will install them as EKS addons"
    )
    log.info(f'building cluster stack "{stack}"')
    log.info(f'deploying stack "{stack}"')
    log.info(f'waiting for CloudFormation stack "{stack}"')
    if with_oidc:
        log.info(f'will create IAM Open ID Connect provider for cluster "{name}" in "{region}"')
        log.success(f'created IAM Open ID Connect provider for cluster "{name}" in "{region}"')
    for _ in range(4):
        log.info("creating addon")
        log.info("successfully created addon")
    for ng in groups:
        ng_stack = "eksctl-{}-nodegroup-{}".format(name, ng["name"])
        log.info('building {}nodegroup stack "{}"'.format("managed " if ng["managed"] else "", ng_stack))
        log.info(f'deploying stack "{ng_stack}"')
        log.info(f'waiting for CloudFormation stack "{ng_stack}"')
    log.info("waiting for the control plane to become ready")
    path = _kubeconfig_target(opts)
    write = _on(opts, "write-kubeconfig", True)
    if write and path:
        write_kubeconfig(path, cluster, _on(opts, "set-kubeconfig-context", True))
        log.success(f'saved kubeconfig as "{path}"')
    elif write:
        log.warning("fake eksctl: no --kubeconfig and no $KUBECONFIG, so no kubeconfig was written")
    log.info("no tasks")
    log.success(f'all EKS cluster resources for "{name}" have been created')
    for g, ng in enumerate(groups):
        log.info(f'nodegroup "{ng["name"]}" has {ng["desired"]} node(s)')
        for n in range(ng["desired"]):
            log.info(f'node "ip-192-168-{32 + g}-{10 + n}.{region}.compute.internal" is ready')
    if groups:
        log.success(f'created {len(groups)} managed nodegroup(s) in cluster "{name}"')
    if write and path:
        log.info(f"kubectl command should work with \"{path}\", try 'kubectl get nodes'")
    log.success(f'EKS cluster "{name}" in "{region}" region is ready')
    return 0


def cmd_delete_cluster(opts, positionals, ctx):
    name, region, _config = _config_or_flags(opts, positionals)
    if not name:
        raise EksctlError("--name must be set")
    log = Log(ctx)
    log.info(f"eksctl version {VERSION}")
    log.info(f"using region {region}")
    log.info(f'deleting EKS cluster "{name}"')
    with ctx.state() as state:
        clusters = state.setdefault("eksctl", {}).setdefault("clusters", {})
        cluster = clusters.get(name)
        if cluster is None or cluster["region"] != region:
            raise EksctlError(f'cluster "{name}" does not exist')
        del clusters[name]
    groups = cluster.get("nodegroups", [])
    log.info(f'will drain 0 unmanaged nodegroup(s) in cluster "{name}"')
    log.info("starting parallel draining, max in-flight of 1")
    log.success("kubeconfig has been updated")
    log.info("cleaning up AWS load balancers created by Kubernetes objects of Kind Service or Ingress")
    tasks = ['delete nodegroup "{}"'.format(ng["name"]) for ng in groups]
    tasks.append('delete cluster control plane "{}"{}'.format(name, "" if _on(opts, "wait") else " [async]"))
    log.info(f"\n{len(tasks)} sequential tasks: {{ {', '.join(tasks)} \n}}")
    for sa in sorted(cluster.get("iamserviceaccounts", {})):
        ns, sa_name = sa.split("/", 1)
        log.info(f'deleted serviceaccount "{sa}"')
        log.info(f'will delete stack "eksctl-{name}-addon-iamserviceaccount-{ns}-{sa_name}"')
    for ng in groups:
        ng_stack = "eksctl-{}-nodegroup-{}".format(name, ng["name"])
        log.info(f'will delete stack "{ng_stack}"')
        log.info(f'waiting for stack "{ng_stack}" to get deleted')
        log.info(f'waiting for CloudFormation stack "{ng_stack}"')
    log.info(f'will delete stack "eksctl-{name}-cluster"')
    if _on(opts, "wait"):
        log.info(f'waiting for stack "eksctl-{name}-cluster" to get deleted')
    log.success("all cluster resources were deleted")
    return 0


def _describe(cluster):
    return {
        "Name": cluster["name"],
        "Arn": cluster["arn"],
        "CreatedAt": cluster["created_at"],
        "Version": cluster["version"],
        "Endpoint": cluster["endpoint"],
        "RoleArn": "arn:aws:iam::{}:role/eksctl-{}-cluster-ServiceRole-FAKE".format(
            _account(), cluster["name"]
        ),
        "ResourcesVpcConfig": {
            "SubnetIds": [
                "subnet-0{}".format(_hexid(cluster["name"], str(i))[:16].lower()) for i in range(6)
            ],
            "SecurityGroupIds": ["sg-0{}".format(_hexid(cluster["name"], "sg")[:16].lower())],
            "ClusterSecurityGroupId": "sg-0{}".format(_hexid(cluster["name"], "csg")[:16].lower()),
            "VpcId": cluster["vpc_id"],
            "EndpointPublicAccess": True,
            "EndpointPrivateAccess": False,
            "PublicAccessCidrs": ["0.0.0.0/0"],
        },
        "KubernetesNetworkConfig": {"ServiceIpv4Cidr": "10.100.0.0/16", "IpFamily": "ipv4"},
        "Identity": {"Oidc": {"Issuer": cluster["oidc_issuer"]}},
        "Status": cluster["status"],
        "CertificateAuthority": {"Data": cluster["ca_data"]},
        "PlatformVersion": "eks.10",
        "Tags": {
            "alpha.eksctl.io/cluster-name": cluster["name"],
            "alpha.eksctl.io/eksctl-version": VERSION,
            "alpha.eksctl.io/cluster-oidc-enabled": "true" if cluster.get("oidc") else "false",
        },
    }


def _print(objs, fmt, ctx, table_rows):
    if fmt == "json":
        ctx.out(json.dumps(objs, indent=4) + "\n")
    elif fmt == "yaml":
        ctx.out(miniyaml.dumps(objs))
    else:
        widths = [max(len(str(r[c])) for r in table_rows) for c in range(len(table_rows[0]))]
        for row in table_rows:
            ctx.out("\t".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip() + "\n")


def cmd_get_cluster(opts, positionals, ctx):
    name, region, _config = _config_or_flags(opts, positionals, forbid_with_file=())
    fmt = _last(opts, "output", "table")
    if fmt not in ("table", "json", "yaml"):
        raise EksctlError(f'unknown output printer type: "{fmt}"')
    clusters = ctx.read_state().get("eksctl", {}).get("clusters", {})
    if name:
        cluster = clusters.get(name)
        if cluster is None or cluster["region"] != region:
            raise _not_found(name)
        obj = _describe(cluster)
        _print(
            [obj],
            fmt,
            ctx,
            [
                ["NAME", "VERSION", "STATUS", "CREATED", "VPC", "SUBNETS", "SECURITYGROUPS", "PROVIDER"],
                [
                    obj["Name"],
                    obj["Version"],
                    obj["Status"],
                    obj["CreatedAt"][:19] + "Z",
                    obj["ResourcesVpcConfig"]["VpcId"],
                    ",".join(sorted(obj["ResourcesVpcConfig"]["SubnetIds"])),
                    ",".join(obj["ResourcesVpcConfig"]["SecurityGroupIds"]),
                    "EKS",
                ],
            ],
        )
        return 0
    everywhere = _on(opts, "all-regions")
    found = [
        c for c in sorted(clusters.values(), key=lambda c: c["name"]) if everywhere or c["region"] == region
    ]
    if not found and fmt == "table":
        Log(ctx).info("no clusters found")
        return 0
    objs = [{"Name": c["name"], "Region": c["region"], "EksctlCreated": "True"} for c in found]
    _print(
        objs,
        fmt,
        ctx,
        [["NAME", "REGION", "EKSCTL CREATED"]] + [[o["Name"], o["Region"], "True"] for o in objs],
    )
    return 0


def _cluster_for(opts, positionals, state_clusters):
    name, region, config = _config_or_flags(
        opts, positionals, name_flags=("cluster", "name"), forbid_with_file=("cluster", "region")
    )
    if not name:
        raise EksctlError("--cluster must be set")
    cluster = state_clusters.get(name)
    if cluster is None or cluster["region"] != region:
        raise _not_found(name)
    return cluster, config


def cmd_associate_oidc(opts, positionals, ctx):
    log = Log(ctx)
    with ctx.state() as state:
        clusters = state.setdefault("eksctl", {}).setdefault("clusters", {})
        cluster, _config = _cluster_for(opts, positionals, clusters)
        name, region = cluster["name"], cluster["region"]
        if cluster.get("oidc"):
            log.info(
                f'IAM Open ID Connect provider is already associated with cluster "{name}" in "{region}"'
            )
            return 0
        if not _on(opts, "approve"):
            log.info(f'(plan) would create IAM Open ID Connect provider for cluster "{name}" in "{region}"')
            log.warning("no changes were applied, run again with '--approve' to apply the changes")
            return 0
        cluster["oidc"] = True
    log.info(f'will create IAM Open ID Connect provider for cluster "{name}" in "{region}"')
    log.success(f'created IAM Open ID Connect provider for cluster "{name}" in "{region}"')
    return 0


def _requested_service_accounts(opts, config):
    if config is not None:
        result = []
        for sa in (config.get("iam") or {}).get("serviceAccounts") or []:
            meta = sa.get("metadata") or {}
            result.append(
                {
                    "name": str(meta.get("name")),
                    "namespace": str(meta.get("namespace") or "default"),
                    "policies": [str(p) for p in (sa.get("attachPolicyARNs") or [])],
                    "role_name": sa.get("roleName"),
                    "role_only": bool(sa.get("roleOnly")),
                }
            )
        return result
    name = _last(opts, "name")
    if not name:
        raise EksctlError("--name must be set")
    policies = []
    for value in opts.get("attach-policy-arn", []):
        policies.extend(p for p in value.split(",") if p)
    if not policies and not _last(opts, "attach-role-arn"):
        raise EksctlError("--attach-policy-arn must be set")
    return [
        {
            "name": name,
            "namespace": _last(opts, "namespace", "default"),
            "policies": policies,
            "role_name": _last(opts, "role-name"),
            "role_only": _on(opts, "role-only"),
        }
    ]


def _plural(items):
    return "" if len(items) == 1 else "s"


def _sa_ids(items):
    return ", ".join(f"{s['namespace']}/{s['name']}" for s in items)


def cmd_create_iamserviceaccount(opts, positionals, ctx):
    log = Log(ctx)
    approve = _on(opts, "approve")
    override = _on(opts, "override-existing-serviceaccounts")
    with ctx.state() as state:
        clusters = state.setdefault("eksctl", {}).setdefault("clusters", {})
        # --name is the service account here, so the cluster comes from --cluster / -f only
        opts_cluster = dict(opts)
        opts_cluster.pop("name", None)
        cluster, config = _cluster_for(opts_cluster, [], clusters)
        wanted = _requested_service_accounts(opts, config)
        if not cluster.get("oidc"):
            raise EksctlError("unable to create iamserviceaccount(s) without IAM OIDC provider enabled")
        existing = cluster.setdefault("iamserviceaccounts", {})
        todo = [sa for sa in wanted if "{}/{}".format(sa["namespace"], sa["name"]) not in existing]
        skipped = [sa for sa in wanted if sa not in todo]
        if skipped:
            log.info(f"{len(skipped)} existing iamserviceaccount(s) ({_sa_ids(skipped)}) will be excluded")
        if todo:
            ids = ", ".join("{}/{}".format(s["namespace"], s["name"]) for s in todo)
            log.info(
                f"{len(todo)} iamserviceaccount{_plural(todo)} ({ids}) {'was' if len(todo) == 1 else 'were'} "
                "included (based on the include/exclude rules)"
            )
            if override:
                log.warning(
                    "metadata of serviceaccounts that exist in Kubernetes will be updated, "
                    "as --override-existing-serviceaccounts was set"
                )
            else:
                log.warning(
                    "serviceaccounts that exist in Kubernetes will be excluded, "
                    "use --override-existing-serviceaccounts to override"
                )
            subtasks = []
            for sa in todo:
                sa_id = "{}/{}".format(sa["namespace"], sa["name"])
                steps = [f'create IAM role for serviceaccount "{sa_id}"']
                if not sa["role_only"]:
                    steps.append(f'create serviceaccount "{sa_id}"')
                subtasks.append(
                    f"\n    {len(steps)} sequential sub-tasks: {{ \n        "
                    + ",\n        ".join(steps)
                    + ",\n    }"
                )
            log.info(f"{len(todo)} task{_plural(todo)}: {{ {','.join(subtasks)} }}")
        else:
            log.info("no tasks")
            return 0
        if not approve:
            log.warning("no changes were applied, run again with '--approve' to apply the changes")
            return 0
        for sa in todo:
            sa_id = "{}/{}".format(sa["namespace"], sa["name"])
            stack = "eksctl-{}-addon-iamserviceaccount-{}-{}".format(
                cluster["name"], sa["namespace"], sa["name"]
            )
            role = sa["role_name"] or f"{stack}-Role1-{_hexid(stack)[:12]}"
            existing[sa_id] = {
                "namespace": sa["namespace"],
                "name": sa["name"],
                "role_arn": f"arn:aws:iam::{_account()}:role/{role}",
                "policies": sa["policies"],
                "role_only": sa["role_only"],
                "stack": stack,
            }
    for sa in todo:
        stack = "eksctl-{}-addon-iamserviceaccount-{}-{}".format(cluster["name"], sa["namespace"], sa["name"])
        log.info(f'building iamserviceaccount stack "{stack}"')
        log.info(f'deploying stack "{stack}"')
        log.info(f'waiting for CloudFormation stack "{stack}"')
    for sa in todo:
        if not sa["role_only"]:
            log.info('created serviceaccount "{}/{}"'.format(sa["namespace"], sa["name"]))
    return 0


def cmd_get_iamserviceaccount(opts, positionals, ctx):
    fmt = _last(opts, "output", "table")
    clusters = ctx.read_state().get("eksctl", {}).get("clusters", {})
    opts_cluster = dict(opts)
    opts_cluster.pop("name", None)
    cluster, _config = _cluster_for(opts_cluster, [], clusters)
    items = sorted(cluster.get("iamserviceaccounts", {}).values(), key=lambda s: (s["namespace"], s["name"]))
    if _last(opts, "namespace"):
        items = [s for s in items if s["namespace"] == _last(opts, "namespace")]
    if _last(opts, "name"):
        items = [s for s in items if s["name"] == _last(opts, "name")]
    objs = [
        {
            "metadata": {"name": s["name"], "namespace": s["namespace"]},
            "attachPolicyARNs": s["policies"],
            "roleOnly": s["role_only"],
            "status": {"roleARN": s["role_arn"], "stackName": s["stack"]},
        }
        for s in items
    ]
    if not objs and fmt == "table":
        Log(ctx).info("no iamserviceaccounts found")
        return 0
    _print(
        objs,
        fmt,
        ctx,
        [["NAMESPACE", "NAME", "ROLE ARN"]] + [[s["namespace"], s["name"], s["role_arn"]] for s in items],
    )
    return 0


def cmd_write_kubeconfig(opts, positionals, ctx):
    clusters = ctx.read_state().get("eksctl", {}).get("clusters", {})
    cluster, _config = _cluster_for(opts, positionals, clusters)
    path = _kubeconfig_target(opts)
    log = Log(ctx)
    if not path:
        log.warning("fake eksctl: no --kubeconfig and no $KUBECONFIG, so no kubeconfig was written")
        return 0
    write_kubeconfig(path, cluster, _on(opts, "set-kubeconfig-context", True))
    log.success(f'saved kubeconfig as "{path}"')
    return 0


HANDLERS = {
    ("version",): cmd_version,
    ("create", "cluster"): cmd_create_cluster,
    ("delete", "cluster"): cmd_delete_cluster,
    ("get", "cluster"): cmd_get_cluster,
    ("get", "clusters"): cmd_get_cluster,
    ("create", "iamserviceaccount"): cmd_create_iamserviceaccount,
    ("get", "iamserviceaccount"): cmd_get_iamserviceaccount,
    ("get", "iamserviceaccounts"): cmd_get_iamserviceaccount,
    ("utils", "write-kubeconfig"): cmd_write_kubeconfig,
    ("utils", "associate-iam-oidc-provider"): cmd_associate_oidc,
}


def handle(argv, ctx):
    try:
        opts, positionals = parse_args(argv)
        if not positionals:
            ctx.out("The official CLI for Amazon EKS\n\nUsage: eksctl [command] [flags]\n")
            return 0
        verb = positionals[0]
        if verb not in REAL_VERBS:
            raise EksctlError(f'unknown command "{verb}" for "eksctl"\nRun \'eksctl --help\' for usage.')
        key = tuple(positionals[:1]) if verb == "version" else tuple(positionals[:2])
        handler = HANDLERS.get(key)
        if handler is None:
            if (
                verb in ("create", "delete", "get", "utils")
                and len(positionals) >= 2
                and not re.match(r"^[a-z-]+$", positionals[1])
            ):
                raise EksctlError(f'unknown command "{positionals[1]}" for "eksctl {verb}"')
            raise EksctlError(
                "fake eksctl: `eksctl {}` is not emulated by tests/fakes (emulated: {}); "
                "answer it with a FAKE_TOOLS_SCRIPT rule".format(
                    " ".join(key), ", ".join(" ".join(k) for k in HANDLERS)
                ),
                code=NOT_EMULATED_EXIT,
            )
        return handler(opts, positionals[len(key) :], ctx)
    except EksctlError as exc:
        text = str(exc)
        ctx.err(text + "\n" if text.startswith("fake eksctl:") else f"Error: {text}\n")
        return exc.code
