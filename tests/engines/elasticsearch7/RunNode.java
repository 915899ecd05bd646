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
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.index.mapper.MapperExtrasPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.reindex.ReindexPlugin;
import org.elasticsearch.transport.Netty4Plugin;

/**
 * One real Elasticsearch 7.17 node for predwatch's tests, bound to 127.0.0.1, in a temporary home removed on exit.
 *
 * <p>The 7.x {@link Node} takes its plugins as classes; started this way, not through Elasticsearch's own
 * {@code main}, which refuses root (our machines and CI run as root) and runs the production bootstrap checks.
 * Every module it has is Elastic's own: the netty4 HTTP module, mapper-extras ({@code match_only_text}) and
 * reindex ({@code _delete_by_query}), published for 7.x as "-client" artifacts. Same contract as the 8.x
 * launcher's RunNode: prints exactly one line, {@code ready http://127.0.0.1:PORT}, on stdout once
 * {@code GET /} answers.
 *
 * <p>Usage: {@code java org.elasticsearch.node.RunNode CONFIG_DIR [HTTP_PORT]} (0 or none picks a free port).
 */
public final class RunNode {

    public static void main(String[] args) throws Exception {
        PrintStream stdout = new PrintStream(new FileOutputStream(FileDescriptor.out), true);
        PrintStream stderr = System.err;
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
            LogConfigurator.configure(environment);

            List<Class<? extends Plugin>> plugins = List.of(Netty4Plugin.class, MapperExtrasPlugin.class,
                ReindexPlugin.class);
            node = new Node(environment, plugins, true) {
            };
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
            node.awaitClose(30, TimeUnit.SECONDS);
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
}
