//! Tests of configuration resolution and environment parsing.
use super::*;
use ExporterKind as K;
type R<T> = Result<T, ConfigError>;
type Vars<'a> = &'a [(&'a str, &'a str)];

fn env(vars: &[(&str, &str)]) -> R<TracingSettings> {
    let map: BTreeMap<&str, &str> = vars.iter().copied().collect();
    TracingSettings::from_env(|k| map.get(k).map(|v| v.to_string()))
}
fn d() -> TracingSettings {
    TracingSettings::default()
}
/// A layer that sets only the exporter, then `f` tweaks it.
fn exp(k: K, f: impl FnOnce(&mut TracingSettings)) -> TracingSettings {
    let mut s = d();
    s.exporter = Some(k);
    f(&mut s);
    s
}
fn res(f: &TracingSettings, e: &TracingSettings, c: &TracingSettings) -> Option<TracingConfig> {
    resolve(Role::Minion, f, e, c).expect("resolves")
}
fn err(f: &TracingSettings, e: &TracingSettings, c: &TracingSettings) -> String {
    resolve(Role::Minion, f, e, c).unwrap_err().to_string()
}

#[test]
fn off_by_default_and_defaults_when_on() {
    assert_eq!(res(&d(), &d(), &d()), None);
    let only_endpoint = env(&[(G_ENDPOINT, "http://c:4318")]).expect("env");
    assert_eq!(
        res(&d(), &only_endpoint, &d()),
        None,
        "endpoint alone does not enable"
    );
    let enabled = TracingSettings {
        enabled: Some(true),
        ..d()
    };
    let c = res(&enabled, &d(), &d()).expect("on");
    assert_eq!(
        (c.exporter, c.endpoint.as_str()),
        (K::OtlpHttp, DEFAULT_HTTP_ENDPOINT)
    );
    assert_eq!((c.timeout, c.insecure), (DEFAULT_TIMEOUT, false));
    assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
    assert_eq!(c.service_name, "sealrpc-minion");
    let g = res(&d(), &d(), &exp(K::OtlpGrpc, |_| ())).expect("on");
    assert_eq!(g.endpoint, DEFAULT_GRPC_ENDPOINT);
    assert_eq!(Role::Master.default_service_name(), "sealrpc-master");
}

#[test]
fn precedence_cli_env_file_default() {
    let layer = |name: &str, ms: u64, sampler: &str| {
        exp(K::Console, |s| {
            s.endpoint = Some(format!("http://{name}/v1/traces"));
            s.timeout_ms = Some(ms);
            s.sampler = Some(sampler.into());
            s.service_name = Some(name.into());
            let h = [
                ("h".to_string(), name.to_string()),
                (name.into(), "1".into()),
            ];
            s.headers = Some(h.into());
        })
    };
    let f = layer("file", 1, "always_on");
    let (e, c) = (
        layer("env", 2, "always_off"),
        layer("cli", 3, "traceidratio"),
    );
    let r = res(&f, &e, &c).expect("on");
    assert_eq!(
        (r.endpoint.as_str(), r.service_name.as_str()),
        ("http://cli/v1/traces", "cli")
    );
    assert_eq!(
        (r.timeout, r.sampler),
        (Duration::from_millis(3), SamplerConfig::TraceIdRatio(1.0))
    );
    assert_eq!((r.headers.len(), r.headers["h"].as_str()), (4, "cli"));
    let r = res(&f, &e, &d()).expect("on");
    assert_eq!(
        (r.endpoint.as_str(), r.service_name.as_str()),
        ("http://env/v1/traces", "env")
    );
    assert_eq!(
        (r.timeout, r.sampler),
        (Duration::from_millis(2), SamplerConfig::AlwaysOff)
    );
    let r = res(&f, &d(), &d()).expect("on");
    assert_eq!(
        (r.service_name.as_str(), r.headers["h"].as_str()),
        ("file", "file")
    );
    assert_eq!(r.timeout, Duration::from_millis(1));
    // Exporter (and on/off): CLI > env > file; `none` is "off".
    let x = |k| exp(k, |_| ());
    let pick = |f, e, c| res(&f, &e, &c).map(|r| r.exporter);
    assert_eq!(pick(x(K::Console), x(K::OtlpGrpc), d()), Some(K::OtlpGrpc));
    assert_eq!(pick(d(), x(K::OtlpGrpc), x(K::Console)), Some(K::Console));
    assert_eq!(pick(x(K::Console), x(K::None), d()), None);
    assert_eq!(pick(x(K::Console), d(), x(K::None)), None);
    let cli_on = TracingSettings {
        enabled: Some(true),
        ..d()
    };
    assert_eq!(pick(x(K::Console), x(K::None), cli_on), Some(K::Console));
}

#[test]
fn sdk_disabled_both_ways() {
    let vars = [
        ("OTEL_SDK_DISABLED", "TRUE"),
        ("OTEL_TRACES_EXPORTER", "console"),
    ];
    let disabled = env(&vars).expect("env");
    assert_eq!(disabled.enabled, Some(false));
    let file_on = exp(K::Console, |_| ());
    assert_eq!(
        res(&file_on, &disabled, &d()),
        None,
        "beats file and env exporter"
    );
    let cli = exp(K::File, |s| s.file = Some("t.jsonl".into()));
    assert_eq!(
        res(&d(), &disabled, &cli).map(|c| c.exporter),
        Some(K::File)
    );
    assert_eq!(res(&file_on, &disabled, &exp(K::None, |_| ())), None);
    for v in ["false", "0", "yes"] {
        let e = env(&[
            ("OTEL_SDK_DISABLED", v),
            ("OTEL_TRACES_EXPORTER", "console"),
        ]);
        let e = e.expect("env");
        assert_eq!(e.enabled, None);
        assert_eq!(res(&d(), &e, &d()).map(|c| c.exporter), Some(K::Console));
    }
}

#[test]
fn traces_exporter_and_protocol() {
    let (x, p, tp) = (
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    );
    let cases: &[(Vars, Option<K>)] = &[
        (&[(x, "otlp")], Some(K::OtlpHttp)),
        (&[(x, "otlp"), (p, "grpc")], Some(K::OtlpGrpc)),
        (
            &[(x, "otlp"), (tp, "grpc"), (p, "http/json")],
            Some(K::OtlpGrpc),
        ),
        (
            &[(x, "otlp"), (p, "grpc"), (tp, "http/protobuf")],
            Some(K::OtlpHttp),
        ),
        (&[(x, "console"), (p, "http/json")], Some(K::Console)),
        (&[(x, "none")], Some(K::None)),
        (&[(x, " File ")], Some(K::File)),
        (&[(x, "otlp-grpc")], Some(K::OtlpGrpc)),
        (&[(x, "")], None),
    ];
    for (vars, want) in cases {
        assert_eq!(env(vars).map(|s| s.exporter), Ok(*want), "{vars:?}");
    }
    let json = env(&[(x, "otlp"), (tp, "http/json")]).unwrap_err();
    assert!(matches!(&json, ConfigError::UnsupportedProtocol { key, .. } if key == tp));
    let zipkin = env(&[(x, "zipkin")]).unwrap_err();
    assert!(matches!(zipkin, ConfigError::UnknownExporter { .. }));
    let many = env(&[(x, "otlp,console")]).unwrap_err();
    assert!(matches!(many, ConfigError::MultipleExporters { .. }));
    let msg = "jaeger".parse::<K>().unwrap_err().to_string();
    assert!(msg.contains("jaeger") && msg.contains("otlp-grpc"), "{msg}");
    assert_eq!(
        ("otlp".parse(), "OTLP-GRPC".parse()),
        (Ok(K::OtlpHttp), Ok(K::OtlpGrpc))
    );
}

#[test]
fn generic_vs_traces_endpoint() {
    let ep = |vars: &[(&str, &str)], k| {
        let e = env(vars).expect("env");
        resolve(Role::Cli, &d(), &e, &exp(k, |_| ())).map(|c| c.map(|c| c.endpoint))
    };
    let ok = |s: &str| Ok(Some(s.to_string()));
    let insecure = ("OTEL_EXPORTER_OTLP_INSECURE", "true");
    let (http, grpc) = (K::OtlpHttp, K::OtlpGrpc);
    assert_eq!(
        ep(&[(G_ENDPOINT, "http://c:4318")], http),
        ok("http://c:4318/v1/traces")
    );
    assert_eq!(
        ep(&[(G_ENDPOINT, "http://c:4318/")], http),
        ok("http://c:4318/v1/traces")
    );
    assert_eq!(
        ep(&[(G_ENDPOINT, "http://c/v1/traces")], http),
        ok("http://c/v1/traces")
    );
    assert_eq!(
        ep(&[(G_ENDPOINT, "http://c:4317")], grpc),
        ok("http://c:4317")
    );
    let both = [
        (G_ENDPOINT, "http://gen:4318"),
        (T_ENDPOINT, "http://sig/custom"),
    ];
    assert_eq!(ep(&both, http), ok("http://sig/custom"));
    assert_eq!(ep(&[(T_ENDPOINT, "c:4317")], grpc), ok("https://c:4317"));
    assert_eq!(
        ep(&[(T_ENDPOINT, "c:4317"), insecure], grpc),
        ok("http://c:4317")
    );
    let bad = ep(&[(T_ENDPOINT, "c:4318")], http).unwrap_err();
    assert!(matches!(&bad, ConfigError::InvalidEndpoint { key, .. } if key == T_ENDPOINT));
    assert!(ep(&[(T_ENDPOINT, "ftp://c")], grpc).is_err());
}

#[test]
fn headers_and_resource_parsing() {
    let (h, th, ra) = (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_RESOURCE_ATTRIBUTES",
    );
    let e = env(&[
        (h, "ignored=1"),
        (th, " api-key = a%20b%2Cc , x=%7E,,"),
        (
            ra,
            "service.name=from-attrs,deployment.environment.name=prod%2F%E2%9C%93",
        ),
    ])
    .expect("env");
    let hs = e.headers.clone().expect("headers");
    assert_eq!(
        (hs.len(), hs["api-key"].as_str(), hs["x"].as_str()),
        (2, "a b,c", "~")
    );
    let r = res(&d(), &e, &exp(K::Console, |_| ())).expect("on");
    assert_eq!(r.service_name, "from-attrs");
    let want = [(
        "deployment.environment.name".to_string(),
        "prod/✓".to_string(),
    )];
    assert_eq!(r.resource, want.into());
    let e = env(&[(ra, "service.name=a"), ("OTEL_SERVICE_NAME", "b")]).expect("env");
    assert_eq!(
        res(&d(), &e, &exp(K::Console, |_| ()))
            .expect("on")
            .service_name,
        "b"
    );
    let bad = |k: &str, v: &str| format!("{:?}", env(&[(k, v)]).unwrap_err());
    let cases = [
        (h, "novalue", "MalformedPair"),
        (ra, "=v", "MalformedPair"),
        (ra, "k=%zz", "BadPercentEncoding"),
        (ra, "k=%4", "BadPercentEncoding"),
        (ra, "k=%ff%fe", "BadPercentEncoding"),
        (h, "bad name=v", "InvalidHeader"),
        (h, "k=a%0Ab", "InvalidHeader"),
        (h, "k=%E2%9C%93", "InvalidHeader"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "InvalidTimeout"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "InvalidTimeout"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "maybe", "InvalidBool"),
    ];
    for (k, v, variant) in cases {
        let got = bad(k, v);
        assert!(
            got.starts_with(variant) && got.contains(k),
            "{k}={v}: {got}"
        );
    }
    // Header values are credentials: errors never quote them.
    let secret = "authorization=Bearer%20sk-live-SECRET%zz";
    let shown = env(&[(h, secret)]).unwrap_err().to_string();
    assert!(
        !shown.contains("SECRET") && !shown.contains("Bearer"),
        "{shown}"
    );
    let shown = env(&[(h, "sk-live-SECRET")]).unwrap_err().to_string();
    assert!(!shown.contains("SECRET"), "{shown}");
    let t = env(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
    ]);
    assert_eq!(t.expect("env").timeout_ms, Some(250));
    // Never panics on odd input.
    for v in [
        "%",
        "%%",
        "=",
        ",",
        "a=b=c",
        "é=%C3%A9",
        "\u{0}=\u{0}",
        "k=%E2%9C",
        "ü",
    ] {
        let all = [
            (h, v),
            (ra, v),
            ("OTEL_TRACES_SAMPLER_ARG", v),
            (T_ENDPOINT, v),
        ];
        let _ = env(&all).map(|e| resolve(Role::Cli, &d(), &e, &exp(K::OtlpGrpc, |_| ())));
    }
}

#[test]
fn samplers() {
    use SamplerConfig as S;
    let cases = [
        ("always_on", Some("junk"), S::AlwaysOn),
        ("always_off", None, S::AlwaysOff),
        ("traceidratio", Some("0.25"), S::TraceIdRatio(0.25)),
        ("traceidratio", None, S::TraceIdRatio(1.0)),
        ("ParentBased_Always_On", None, S::ParentBasedAlwaysOn),
        ("parentbased_always_off", None, S::ParentBasedAlwaysOff),
        (
            "parentbased_traceidratio",
            Some("0"),
            S::ParentBasedTraceIdRatio(0.0),
        ),
        (
            "parentbased_traceidratio",
            Some(" 1 "),
            S::ParentBasedTraceIdRatio(1.0),
        ),
    ];
    for (name, arg, want) in cases {
        assert_eq!(S::parse(name, arg), Ok(want), "{name} {arg:?}");
    }
    for arg in ["1.5", "-0.1", "NaN", "inf", "half", ""] {
        let got = S::parse("traceidratio", Some(arg));
        assert!(
            matches!(got, Err(ConfigError::InvalidSamplerArg { .. })),
            "{arg}"
        );
    }
    let unknown = S::parse("jaeger_remote", None);
    assert!(matches!(unknown, Err(ConfigError::UnknownSampler { .. })));
    let vars = [
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
    ];
    let msg = err(&d(), &env(&vars).expect("env"), &exp(K::Console, |_| ()));
    assert!(
        msg.contains("OTEL_TRACES_SAMPLER_ARG") && msg.contains('2'),
        "{msg}"
    );
    let file = exp(K::Console, |s| s.sampler = Some("bogus".into()));
    let msg = err(&file, &d(), &d());
    assert!(
        msg.contains("[tracing].sampler") && msg.contains("bogus"),
        "{msg}"
    );
}

#[test]
fn file_exporter_needs_path_and_toml_layer() {
    let f = exp(K::File, |_| ());
    assert_eq!(
        resolve(Role::Demo, &f, &d(), &d()),
        Err(ConfigError::FileExporterNeedsPath)
    );
    let toml_text = r#"
        exporter = "otlp-grpc"
        endpoint = "collector:4317"
        insecure = true
        timeout_ms = 2500
        sampler = "traceidratio"
        sampler_arg = "0.1"
        headers = { authorization = "Bearer x" }
        resource = { "deployment.environment.name" = "staging" }
    "#;
    let s: TracingSettings = toml::from_str(toml_text).expect("toml");
    let r = res(&s, &d(), &d()).expect("on");
    assert_eq!(
        (r.exporter, r.endpoint.as_str()),
        (K::OtlpGrpc, "http://collector:4317")
    );
    assert_eq!(
        (r.timeout, r.sampler),
        (
            Duration::from_millis(2500),
            SamplerConfig::TraceIdRatio(0.1)
        )
    );
    assert_eq!(r.headers["authorization"], "Bearer x");
    let parse = |t: &str| toml::from_str::<TracingSettings>(t).is_ok();
    assert!(parse("exporter = \"otlp\"") && parse("file = \"/tmp/t.jsonl\""));
    assert!(!parse("bogus = 1") && !parse("endpoint_is_generic = true"));
    assert!(!parse("exporter = \"jaeger\""));
    let zero = exp(K::Console, |s| s.timeout_ms = Some(0));
    assert!(err(&d(), &d(), &zero).contains("command line: timeout_ms"));
    let empty = exp(K::Console, |s| s.service_name = Some(" ".into()));
    assert!(err(&empty, &d(), &d()).contains("[tracing].service_name"));
    let bad_header = exp(K::Console, |s| {
        s.headers = Some([("a b".into(), "v".into())].into())
    });
    assert!(err(&bad_header, &d(), &d()).contains("[tracing].headers"));
}
