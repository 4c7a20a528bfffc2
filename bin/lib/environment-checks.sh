# shellcheck shell=bash
# shellcheck disable=SC2154 # conf, at, env_file, dry_run and phase are the caller's (see below)
# The shape of each value in manifests/infra/environments/ENV.env, checked by bin/bootstrap
# before it runs anything. Reads the caller's conf (KEY -> value), at (KEY -> file:line),
# env_file, environment, phase and dry_run; every refusal is usage_error's one line naming the
# file, line, key, value and the fix.

# bad KEY WHAT: refuse the value of KEY.
bad() { usage_error "${at[$1]:-$env_file}: $1 '${conf[$1]}' $2"; }

octet() { [[ $1 =~ ^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$ ]]; }

ipv4_cidr() {
  local address=${1%/*} bits=${1#*/} a b c d
  [[ $1 == */* && $bits =~ ^([0-9]|[12][0-9]|3[0-2])$ ]] || return 1
  IFS=. read -r a b c d <<<"$address"
  [[ $address =~ ^[0-9.]+$ ]] && octet "$a" && octet "$b" && octet "$c" && octet "$d"
}

# The zone-ID prefix of a region (AWS names zone IDs after it): us-east-1 -> use1,
# ap-northeast-1 -> apne1, eu-central-2 -> euc2, us-gov-west-1 -> usgw1.
zone_id_prefix() {
  local parts direction
  IFS=- read -r -a parts <<<"$1"
  local -A short=([east]=e [west]=w [north]=n [south]=s [central]=c [northeast]=ne [northwest]=nw
    [southeast]=se [southwest]=sw)
  if [[ ${parts[1]} == gov ]]; then
    direction=${short[${parts[2]}]:-?}
    printf '%sg%s%s' "${parts[0]}" "$direction" "${parts[3]}"
  else
    direction=${short[${parts[1]}]:-?}
    printf '%s%s%s' "${parts[0]}" "$direction" "${parts[2]}"
  fi
}

check_region_and_zones() {
  [[ ${conf[REGION]} =~ ^[a-z]{2}(-gov)?-(east|west|north|south|central|northeast|northwest|southeast|southwest)-[0-9]$ ]] ||
    bad REGION "is not an AWS region code: write e.g. us-east-1 or eu-west-2"
  local zones zone prefix seen=' '
  IFS=, read -r -a zones <<<"${conf[AVAILABILITY_ZONE_IDS]}"
  ((${#zones[@]} == 3)) || bad AVAILABILITY_ZONE_IDS "needs three zone IDs separated by commas"
  prefix=$(zone_id_prefix "${conf[REGION]}")
  for zone in "${zones[@]}"; do
    [[ $zone =~ ^[a-z]+[0-9]-az[0-9]+$ ]] ||
      bad AVAILABILITY_ZONE_IDS "holds '$zone', not a zone ID (a name like us-east-1a maps to a different zone in every account): list the IDs with aws ec2 describe-availability-zones --region ${conf[REGION]} --query 'AvailabilityZones[].ZoneId'"
    [[ $zone == "$prefix"-* ]] ||
      bad AVAILABILITY_ZONE_IDS "holds '$zone', which is not in REGION ${conf[REGION]} (its zone IDs start $prefix-)"
    [[ $seen != *" $zone "* ]] || bad AVAILABILITY_ZONE_IDS "names '$zone' twice: give three different zones"
    seen+="$zone "
  done
}

check_network() {
  if ! [[ ${conf[CIDR_PREFIX]} =~ ^10\.([0-9]{1,3})$ ]] || ! octet "${BASH_REMATCH[1]}"; then
    bad CIDR_PREFIX "is not 10.N (N from 0 to 255): the VPC is CIDR_PREFIX.0.0/16"
  fi
  local cidrs cidr
  IFS=, read -r -a cidrs <<<"${conf[PUBLIC_ACCESS_CIDRS]}"
  for cidr in "${cidrs[@]}"; do
    ipv4_cidr "$cidr" || bad PUBLIC_ACCESS_CIDRS "holds '$cidr', not an IPv4 CIDR such as 198.51.100.0/24"
  done
}

check_names() {
  [[ ${conf[DOMAIN]} =~ ^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$ ]] ||
    bad DOMAIN "is not a lowercase DNS name such as status.example.com"
  [[ ${conf[HOSTED_ZONE_ID]} =~ ^Z[A-Z0-9]{1,31}$ ]] ||
    bad HOSTED_ZONE_ID "is not a Route 53 hosted zone ID (Z and capital letters or digits): aws route53 list-hosted-zones-by-name --dns-name ${conf[DOMAIN]}"
  [[ ${conf[GITHUB_REPOSITORY]} =~ ^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$ ]] ||
    bad GITHUB_REPOSITORY "is not OWNER/REPOSITORY"
  [[ -z ${conf[ALARM_EMAIL]} || ${conf[ALARM_EMAIL]} =~ ^[^@]+@[^@]+\.[^@]+$ ]] ||
    bad ALARM_EMAIL "is not an email address (or leave it empty for no alarm emails)"
  [[ ${conf[KUBERNETES_VERSION]} =~ ^1\.[0-9]+$ ]] || bad KUBERNETES_VERSION "is not MAJOR.MINOR such as 1.34"
  local key
  for key in VPC_CNI_VERSION COREDNS_VERSION KUBE_PROXY_VERSION EBS_CSI_VERSION; do
    [[ ${conf[$key]} =~ ^v[0-9]+\.[0-9]+\.[0-9]+-eksbuild\.[0-9]+$ ]] ||
      bad "$key" "is not an EKS add-on version such as v1.20.4-eksbuild.1 (aws eks describe-addon-versions)"
  done
}

# The example values the committed files carry reach AWS only through the infra phase: refused
# there, outside a dry run.
check_no_examples() {
  $dry_run && return 0
  [[ $phase == all || $phase == infra ]] || return 0
  [[ ${conf[HOSTED_ZONE_ID]} != *EXAMPLE* ]] || bad HOSTED_ZONE_ID "is the example value: give your hosted zone's ID"
  [[ ${conf[DOMAIN]} != example.com && ${conf[DOMAIN]} != *.example.com ]] ||
    bad DOMAIN "is the example value: give your domain"
  [[ ${conf[GITHUB_REPOSITORY]} != org/statuspage ]] ||
    bad GITHUB_REPOSITORY "is the example value: give the repository whose workflows deploy (OWNER/REPOSITORY)"
  [[ ! ${conf[PUBLIC_ACCESS_CIDRS]} =~ (^|,)(192\.0\.2|198\.51\.100|203\.0\.113)\. ]] ||
    bad PUBLIC_ACCESS_CIDRS "holds a documentation range (RFC 5737): give your operators' and runners' egress ranges"
}

check_environment_file() {
  local key
  for key in AVAILABILITY_ZONE_IDS PUBLIC_ACCESS_CIDRS; do
    [[ ${conf[$key]} != ,* && ${conf[$key]} != *, && ${conf[$key]} != *,,* ]] ||
      bad "$key" "has an empty item: separate the items with single commas"
  done
  check_region_and_zones
  check_network
  check_names
  check_no_examples
}
