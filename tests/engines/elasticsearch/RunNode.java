package org.elasticsearch.node;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.Supplier;
import java.util.stream.Stream;

import org.apache.lucene.util.Version;
import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.index.mapper.Mapper;
import org.elasticsearch.index.mapper.TextFieldMapper;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.MockPluginsService;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.MapperPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.RestChannel;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.transport.netty4.Netty4Plugin;
import org.elasticsearch.xcontent.XContentBuilder;

/**
 * One real Elasticsearch node for predwatch's tests, bound to 127.0.0.1, in a temporary home removed on exit.
 *
 * <p>Built like the test framework's {@code MockNode} builds its node (plugins given as classes on the classpath,
 * every service the production one) but without that class, whose test bootstrap refuses root as Elasticsearch's
 * own {@code main} does (that one also runs the production bootstrap checks); our machines and CI run as root.
 * Everything a request meets is the server's own code (Lucene, mappings, bulk, search, aggregations, templates),
 * plus the netty4 HTTP module. Two small pieces stand in for modules Elastic does not publish on Maven Central:
 * {@code GET /} (module rest-root) and the {@code match_only_text} type name (module mapper-extras), see
 * {@link StandIns}.
 *
 * <p>Usage: {@code java org.elasticsearch.node.RunNode CONFIG_DIR [HTTP_PORT]} (0 or none picks a free port;
 * CONFIG_DIR holds log4j2.properties). Prints exactly one line,
 * {@code ready http://127.0.0.1:PORT}, on stdout once {@code GET /} answers; everything else goes to stderr.
 */
public final class RunNode {

    public static void main(String[] args) throws Exception {
        PrintStream stdout = new PrintStream(new FileOutputStream(FileDescriptor.out), true);
        PrintStream stderr = System.err;  // the logging configuration replaces System.err by a logger
        System.setOut(System.err);  // the ready line is the only thing on stdout

        Path configDir = Path.of(args[0]).toAbsolutePath();
        int httpPort = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        Path home = Files.createTempDirectory("predwatch-es-");
        Node node = null;
        try {
            Settings settings = Settings.builder()
                .put("path.home", home.toString())
                .put("path.data", home.resolve("data").toString())
                .put("path.logs", home.resolve("logs").toString())
                .put("cluster.name", "predwatch-test")
                .put("node.name", "predwatch-es")
                .put("network.host", "127.0.0.1")
                .put("http.port", httpPort == 0 ? freePort() : httpPort)
                .put("transport.port", freePort())
                .put("discovery.type", "single-node")
                // A test machine's disk may be fuller than production watermarks allow; do not go read-only.
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                .put("logger.level", System.getenv().getOrDefault("PREDWATCH_ES_LOG_LEVEL", "warn"))
                .build();
            Environment environment = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), configDir,
                () -> "predwatch-es");
            LogConfigurator.setNodeName("predwatch-es");
            LogConfigurator.configure(environment, true);  // true: keep the appender named "console"

            List<Class<? extends Plugin>> plugins = List.of(Netty4Plugin.class, StandIns.class);
            boolean forbidPrivateIndexSettings = true;  // as in production
            node = new Node(NodeConstruction.prepareConstruction(environment, null, new ClasspathPlugins(plugins),
                forbidPrivateIndexSettings));
            Node started = node;
            Runtime.getRuntime().addShutdownHook(new Thread(() -> stop(started, home), "predwatch-es-stop"));
            node.start();
        } catch (Throwable e) {
            e.printStackTrace();
            Throwable cause = e;
            while (cause.getCause() != null) {
                cause = cause.getCause();
            }
            String because = cause == e ? "" : " (cause: " + cause + ")";
            stderr.println("RunNode: Elasticsearch did not start: " + e + because);
            if (node == null) {
                delete(home);
            }
            System.exit(3);  // the shutdown hook, if registered, closes the node and removes its home
        }
        int port = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress().getPort();
        String url = "http://127.0.0.1:" + port;
        waitUntilAnswers(url + "/");
        stdout.println("ready " + url);
        Thread.currentThread().join();  // until SIGTERM/SIGINT run the shutdown hook
    }

    /** The node's services as in production, except that plugins are the classes given, loaded from the classpath. */
    private static final class ClasspathPlugins extends NodeServiceProvider {
        private final List<Class<? extends Plugin>> plugins;

        ClasspathPlugins(List<Class<? extends Plugin>> plugins) {
            this.plugins = plugins;
        }

        @Override
        PluginsService newPluginService(Environment environment, PluginsLoader unused) {
            return new MockPluginsService(environment.settings(), environment, plugins);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    private static void waitUntilAnswers(String url) throws Exception {
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (true) {
            try {
                HttpURLConnection connection = (HttpURLConnection) URI.create(url).toURL().openConnection();
                connection.setConnectTimeout(1000);
                connection.setReadTimeout(5000);
                if (connection.getResponseCode() == 200) {
                    return;
                }
            } catch (IOException notYet) {
                if (System.nanoTime() > deadline) {
                    throw notYet;
                }
            }
            Thread.sleep(100);
        }
    }

    private static void stop(Node node, Path home) {
        try {
            node.close();
            node.awaitClose(30, java.util.concurrent.TimeUnit.SECONDS);
        } catch (Exception e) {
            e.printStackTrace();
        }
        delete(home);
    }

    private static void delete(Path home) {
        try (Stream<Path> paths = Files.walk(home)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            e.printStackTrace();
        }
    }

    /**
     * Stand-ins for two modules that Elastic does not publish on Maven Central (checked for every 8.x and 9.x).
     *
     * <p>{@code GET /} (and {@code HEAD /}): the rest-root module's answer, built from the server's own build
     * information. {@code match_only_text}: the mapper-extras type that ECS uses for {@code message}; here it is
     * parsed by the server's {@code text} mapper, so it is indexed and searched as {@code text} (with positions
     * and norms) and {@code GET _mapping} reports it as {@code text}.
     */
    public static final class StandIns extends Plugin implements ActionPlugin, MapperPlugin {
        private volatile ClusterService clusterService;

        @Override
        public Collection<?> createComponents(PluginServices services) {
            clusterService = services.clusterService();
            return List.of();
        }

        @Override
        public Map<String, Mapper.TypeParser> getMappers() {
            return Map.of("match_only_text", TextFieldMapper.PARSER);
        }

        @Override
        public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry registry,
                                                       RestController controller, ClusterSettings clusterSettings,
                                                       IndexScopedSettings indexScopedSettings, SettingsFilter filter,
                                                       IndexNameExpressionResolver resolver,
                                                       Supplier<DiscoveryNodes> nodes,
                                                       Predicate<NodeFeature> clusterSupportsFeature) {
            return List.of(new RestHandler() {
                @Override
                public List<Route> routes() {
                    return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
                }

                @Override
                public void handleRequest(RestRequest request, RestChannel channel, NodeClient client)
                    throws IOException {
                    channel.sendResponse(new RestResponse(RestStatus.OK, root(channel.newBuilder())));
                }
            });
        }

        private XContentBuilder root(XContentBuilder b) throws IOException {
            Build build = Build.current();
            var state = clusterService.state();
            b.startObject();
            b.field("name", clusterService.getNodeName());
            b.field("cluster_name", state.getClusterName().value());
            b.field("cluster_uuid", state.metadata().clusterUUID());
            b.startObject("version");
            b.field("number", build.qualifiedVersion());
            b.field("build_flavor", build.flavor());
            b.field("build_type", build.type().displayName());
            b.field("build_hash", build.hash());
            b.field("build_date", build.date());
            b.field("build_snapshot", build.isSnapshot());
            b.field("lucene_version", Version.LATEST.toString());
            b.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
            b.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
            b.endObject();
            b.field("tagline", "You Know, for Search");
            b.endObject();
            return b;
        }
    }
}
