package fr.socle.keycloak.proconnect;

import org.keycloak.broker.oidc.OIDCIdentityProvider;
import org.keycloak.broker.oidc.OIDCIdentityProviderConfig;
import org.keycloak.broker.oidc.OIDCIdentityProviderFactory;
import org.keycloak.models.IdentityProviderModel;
import org.keycloak.models.KeycloakSession;

/**
 * Registers {@link ProConnectIdentityProvider} as the identity provider type {@code proconnect-oidc}.
 *
 * <p>It is the standard OpenID Connect type in every other respect (configuration, discovery
 * import, mappers), so a realm switches to it by changing only the provider's {@code providerId}.
 */
public class ProConnectIdentityProviderFactory extends OIDCIdentityProviderFactory {

    public static final String PROVIDER_ID = "proconnect-oidc";

    @Override
    public String getId() {
        return PROVIDER_ID;
    }

    @Override
    public String getName() {
        return "ProConnect (OpenID Connect, 32-byte nonce)";
    }

    @Override
    public OIDCIdentityProvider create(KeycloakSession session, IdentityProviderModel model) {
        return new ProConnectIdentityProvider(session, new OIDCIdentityProviderConfig(model));
    }
}
