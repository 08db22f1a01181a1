package fr.socle.keycloak.proconnect;

import jakarta.ws.rs.core.UriBuilder;
import org.keycloak.broker.oidc.OIDCIdentityProvider;
import org.keycloak.broker.oidc.OIDCIdentityProviderConfig;
import org.keycloak.broker.provider.AuthenticationRequest;
import org.keycloak.common.util.Base64Url;
import org.keycloak.common.util.SecretGenerator;
import org.keycloak.models.KeycloakSession;

/**
 * Keycloak's OIDC broker, with the nonce ProConnect asks for: at least 32 characters.
 *
 * <p>Keycloak 26.4 sends 16 random bytes (22 characters). This provider lets the parent build the
 * authorization request, then replaces its nonce with 32 random bytes (43 characters, base64url) in
 * both places the parent put it: the {@code nonce} query parameter and the authentication session's
 * client note that the ID token's {@code nonce} claim is later checked against. Everything else,
 * including that check, stays Keycloak's own code.
 */
public class ProConnectIdentityProvider extends OIDCIdentityProvider {

    /** The client note {@code OIDCIdentityProvider} stores the expected nonce in (private there). */
    static final String BROKER_NONCE_NOTE = "BROKER_NONCE";

    /** The query parameter of the authorization request (OpenID Connect Core, section 3.1.2.1). */
    static final String NONCE_PARAMETER = "nonce";

    /** 32 bytes: 256 bits of entropy, 43 base64url characters. */
    static final int NONCE_BYTES = 32;

    public ProConnectIdentityProvider(KeycloakSession session, OIDCIdentityProviderConfig config) {
        super(session, config);
    }

    @Override
    protected UriBuilder createAuthorizationUrl(AuthenticationRequest request) {
        UriBuilder uri = super.createAuthorizationUrl(request);
        if (getConfig().isDisableNonce()) {
            return uri;
        }
        String nonce = Base64Url.encode(SecretGenerator.getInstance().randomBytes(NONCE_BYTES));
        request.getAuthenticationSession().setClientNote(BROKER_NONCE_NOTE, nonce);
        return uri.replaceQueryParam(NONCE_PARAMETER, nonce);
    }
}
